"""The notification bell: unread count on every page, the list, marking read."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.db import WRITE
from engine.models import Notification, User
from engine.outbox.notifications import IN_APP, notify
from support.office import as_user, start_approval, text


def send(office, username, subject, **links):
    with Session(office.db.execution_options(**WRITE)) as session, session.begin():
        user = session.scalar(select(User).where(User.username == username))
        notify(session, user, kind="escalation.1", subject=subject, body=f"{subject}: act now", now=office.clock(),
               channels=[IN_APP], **links)


def ids_of(office, username):
    with office.reading() as session:
        return list(session.scalars(select(Notification.id).join(User).where(User.username == username)
                                    .order_by(Notification.id)))


def test_the_unread_count_shows_on_every_page_and_the_list_links_to_the_task(app, office):
    instance, item = start_approval(office)
    send(office, "ann", "Request discount is overdue", work_item_id=item.id, instance_id=instance.id)
    send(office, "ann", "Second reminder")
    client = as_user(app, "ann")
    assert 'data-unread="2"' in client.get("/").get_data(as_text=True)
    html = client.get("/notifications/").get_data(as_text=True)
    assert "Request discount is overdue" in html and f'href="/items/{item.id}"' in html
    assert f'href="/instances/{instance.id}"' in html
    assert 'data-unread' not in as_user(app, "bob").get("/").get_data(as_text=True)


def test_marking_read_touches_only_my_own_notifications(app, office):
    send(office, "ann", "For ann")
    send(office, "bob", "For bob")
    [anns] = ids_of(office, "ann")
    [bobs] = ids_of(office, "bob")
    client = as_user(app, "ann")
    client.post("/notifications/read", data={"id": [str(anns), str(bobs)]})
    assert 'data-unread' not in client.get("/").get_data(as_text=True)
    assert 'data-unread="1"' in as_user(app, "bob").get("/").get_data(as_text=True)


def test_mark_all_read(app, office):
    for n in range(3):
        send(office, "ann", f"Reminder {n}")
    client = as_user(app, "ann")
    client.post("/notifications/read")
    assert "data-unread" not in client.get("/notifications/").get_data(as_text=True)
    assert "Reminder 2" in text(client.get("/notifications/"))
