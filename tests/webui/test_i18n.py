"""Russian and English: pages, dates, numbers and plurals follow the user's locale (that
every message is translated is tests/test_catalogs.py's)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from support.office import as_user, start_approval, text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_russian_users_get_russian_pages_dates_and_plurals(app, office, clock):
    office.add_user("olga", "Ольга", password_hash=office.user("ann").password_hash, manager="boss")
    start_approval(office, curator="olga")
    clock.advance(days=9)  # due Wednesday; late on Thu, Fri, Mon, Tue, Wed of the next week
    page = text(as_user(app, "olga").get("/"))
    assert "Мои задачи" in page and "Просрочено 1" in page
    assert "опоздание 5 рабочих дней" in page
    english = text(as_user(app, "boss").get("/board/"))
    assert "5 working days late" in english


def test_dates_are_formatted_for_the_locale(app):
    from flask_babel import force_locale

    from webui.i18n import Dates

    moment = datetime(2026, 11, 23, 9, 5, tzinfo=timezone.utc)
    with app.test_request_context():
        with force_locale("ru"):
            assert Dates().when(moment) == "23.11.2026, 09:05"
        with force_locale("en"):
            assert Dates().when(moment) == "11/23/26, 9:05\u202fAM"
