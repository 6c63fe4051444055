"""The employee's side: signing in, the inbox, the task page and its form."""

from __future__ import annotations

from support.office import GOOD_REQUEST, as_user, login, start_approval, text
from webui import create_app


def test_a_wrong_password_is_refused_with_a_message_and_no_session(client):
    response = login(client, "ann", "wrong")
    assert response.status_code == 401
    assert "Неверное имя пользователя или пароль" in text(response)  # a visitor's default language is Russian
    assert client.get("/").status_code == 302  # still anonymous: sent to the login page


def test_an_unknown_user_and_a_user_without_password_cannot_sign_in(client, office):
    office.add_user("nopass", "No Password")
    assert login(client, "nobody").status_code == 401
    assert login(client, "nopass", "").status_code == 401


def test_signing_in_goes_to_the_page_asked_for_but_never_off_site(client):
    assert login(client, "ann").headers["Location"] == "/"
    client.post("/logout")
    response = client.post("/login?next=/items/1", data={"username": "ann", "password": "correct horse 7"})
    assert response.headers["Location"] == "/items/1"
    client.post("/logout")
    response = client.post("/login?next=https://evil.example/x", data={"username": "ann", "password": "correct horse 7"})
    assert response.headers["Location"] == "/"


def test_passwords_are_stored_as_scrypt_hashes(office):
    assert office.user("ann").password_hash.startswith("scrypt:")


def test_the_inbox_lists_my_items_soonest_first_with_counts_and_the_queue(app, office, clock):
    _, later = start_approval(office, key="DEAL-LATE")
    clock.advance(hours=-5)
    _, sooner = start_approval(office, key="DEAL-SOON")
    clock.advance(hours=5)
    office.add_user("zed", "Zed Other")  # an item for someone else never shows
    start_approval(office, curator="zed", key="DEAL-ZED")

    page = text(as_user(app, "ann").get("/"))
    assert page.index("DEAL-SOON") < page.index("DEAL-LATE")
    assert "DEAL-ZED" not in page
    assert "Assigned to me 2" in page

    # The review step goes to the heads group's queue: boss can take it.
    boss = as_user(app, "boss")
    office.complete(sooner.id, GOOD_REQUEST, "ann")
    queue = text(boss.get("/?bucket=queue"))
    assert "Review discount" in queue and "DEAL-SOON" in queue
    assert "My groups' queue 1" in queue


def test_overdue_items_say_how_late_in_working_days_and_at_risk_ones_are_bucketed(app, office, clock):
    start_approval(office, key="DEAL-1")  # due in 2 days: Wednesday 09:00
    client = as_user(app, "ann")
    assert "At risk 0" in text(client.get("/"))
    clock.advance(days=1, hours=1)  # Tuesday 10:00: due within one working day
    page = text(client.get("/?bucket=at_risk"))
    assert "At risk 1" in page and "DEAL-1" in page
    clock.advance(days=6)  # Monday 10:00 of the next week: late on Thursday, Friday and Monday
    page = text(client.get("/?bucket=overdue"))
    assert "Overdue 1" in page
    assert "3 working days late" in page


def test_search_finds_items_by_deal_or_customer(app, office):
    start_approval(office, key="DEAL-7 Romashka LLC")
    start_approval(office, key="DEAL-8 Vector JSC")
    page = text(as_user(app, "ann").get("/?q=romashka"))
    assert "Romashka" in page and "Vector" not in page
    assert "All 1" in page


def test_the_task_page_renders_the_bpmn_form(app, office):
    _, item = start_approval(office)
    html = as_user(app, "ann").get(f"/items/{item.id}").get_data(as_text=True)
    assert 'type="number" name="discount"' in html and 'min="1"' in html and 'max="50"' in html
    assert 'type="date" name="valid_until"' in html
    assert 'type="checkbox" name="urgent"' in html
    assert '<select name="channel"' in html and '<option value="phone"' in html
    assert 'name="version" value="1"' in html
    assert 'name="csrf_token"' in html


def test_a_bad_value_is_shown_next_to_its_field_and_nothing_is_saved(app, office):
    _, item = start_approval(office)
    client = as_user(app, "ann")
    response = client.post(f"/items/{item.id}", data={"version": "1", "discount": "99", "reason": "ok then"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-field-error="discount">Must be at most 50.</p>' in html
    assert 'value="ok then"' in html  # what was typed is kept
    assert office.work_item(item.id).status == "open"


def test_a_russian_reader_gets_the_engines_messages_in_russian(app, office):
    _, item = start_approval(office)
    office.set_locale("ann", "ru")
    client = as_user(app, "ann")
    response = client.post(f"/items/{item.id}", data={"version": "1", "discount": "много", "reason": "no"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert 'data-field-error="discount">Введите целое число.</p>' in html
    assert 'data-field-error="reason">Не меньше 3 символов.</p>' in html

    office.reassign(item.id, "bob", "boss", "ann is ill")
    stale = client.post(f"/items/{item.id}", data={"version": "1", **GOOD_REQUEST})
    assert stale.status_code == 409
    assert f"Задача {item.id} изменилась, пока была открыта у вас (версия 1, теперь 2)" in text(stale)


def test_completing_goes_on_to_the_next_step_and_says_where_the_process_is(app, office):
    instance, item = start_approval(office)
    client = as_user(app, "boss")
    office.reassign(item.id, "boss", "boss", "covering")
    item = office.work_item(item.id)
    response = client.post(f"/items/{item.id}", data={"version": str(item.version), **GOOD_REQUEST})
    assert response.status_code == 302
    [review] = office.work_items(instance_id=instance.id)
    assert response.headers["Location"] == f"/items/{review.id}"  # boss may take the review next
    page = text(client.get(response.headers["Location"]))
    assert "Completed “Request discount”. Current stage: Review discount." in page


def test_a_stale_page_gets_a_clear_409_not_a_500(app, office):
    _, item = start_approval(office)
    client = as_user(app, "ann")
    office.reassign(item.id, "bob", "boss", "ann is ill")  # while ann had the page open
    response = client.post(f"/items/{item.id}", data={"version": "1", **GOOD_REQUEST})
    assert response.status_code == 409
    assert "changed while you had it open" in text(response)
    assert office.work_item(item.id).status == "open"

    _, other = start_approval(office, key="DEAL-2")
    office.complete(other.id, GOOD_REQUEST, "ann")
    response = client.post(f"/items/{other.id}", data={"version": "1", **GOOD_REQUEST})
    assert response.status_code == 409
    assert "changed while you had it open" in text(response)
    assert "already completed" in text(response)


def test_claiming_from_the_queue_makes_the_item_mine(app, office):
    instance, item = start_approval(office)
    office.complete(item.id, GOOD_REQUEST, "ann")
    [review] = office.work_items(instance_id=instance.id)
    boss = as_user(app, "boss")
    response = boss.post(f"/items/{review.id}/claim")
    assert response.headers["Location"] == f"/items/{review.id}"
    assert office.work_item(review.id).assignee.username == "boss"
    # ann is not in heads: the same claim is refused.
    assert as_user(app, "ann").post(f"/items/{review.id}/claim").status_code == 403


def test_the_language_is_chosen_per_user(app, office):
    client = as_user(app, "ann")
    assert "My work" in text(client.get("/"))
    client.post("/settings/language", data={"locale": "ru"})
    assert office.user("ann").locale == "ru"
    assert "Мои задачи" in text(client.get("/"))
    assert "Мои задачи" not in text(as_user(app, "bob").get("/"))


def test_every_form_needs_a_csrf_token(system, office):
    app = create_app({"TESTING": True, "SECRET_KEY": "test"}, system=system)
    client = app.test_client()
    assert login(client, "ann").status_code == 400  # no token: refused before the password is checked
    html = client.get("/login").get_data(as_text=True)
    token = html.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    response = client.post("/login", data={"username": "ann", "password": "correct horse 7", "csrf_token": token})
    assert response.status_code == 302
    _, item = start_approval(office)
    response = client.post(f"/items/{item.id}", data={"version": "1", **GOOD_REQUEST})
    assert response.status_code == 400 and "expired" in text(response)
    assert office.work_item(item.id).status == "open"


def test_pages_merge_my_items_and_the_queue_in_deadline_order(app, office, clock, monkeypatch):
    import webui.inbox

    monkeypatch.setattr(webui.inbox, "PAGE_SIZE", 2)
    for n in range(2):  # due in 2 days
        start_approval(office, curator="boss", key=f"OWN-{n}")
    for n in range(2):  # reviews for the heads' queue, due in 4 hours: sooner than boss's own
        _, request = start_approval(office, key=f"QUEUE-{n}")
        office.complete(request.id, GOOD_REQUEST, "ann")
        clock.advance(minutes=10)
    boss = as_user(app, "boss")

    first, second = text(boss.get("/")), text(boss.get("/?page=1"))
    assert "All 4" in first and "Assigned to me 2" in first and "My groups' queue 2" in first
    assert first.index("QUEUE-0") < first.index("QUEUE-1") and "OWN-" not in first
    assert "OWN-0" in second and "OWN-1" in second and "QUEUE-" not in second
    assert 'page=1' in boss.get("/").get_data(as_text=True)  # a next page is offered
    assert 'page=2' not in boss.get("/?page=1").get_data(as_text=True)
