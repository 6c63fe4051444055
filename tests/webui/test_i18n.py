"""Russian and English: every message of the UI is translated, the shipped .mo is the
compiled .po, and dates, numbers and plurals follow the user's locale."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

import webui
from support.office import as_user, start_approval, text

WEBUI = Path(webui.__file__).parent
PO = WEBUI / "translations/ru/LC_MESSAGES/messages.po"
MO = WEBUI / "translations/ru/LC_MESSAGES/messages.mo"


def test_every_message_of_the_code_and_templates_has_a_russian_translation():
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None}
    used = {message if isinstance(message, str) else message[0]
            for _file, _line, message, _comments, _context in extract_from_dir(str(WEBUI), method_map,
                                                                                keywords=keywords)}
    catalog = read_po(PO.open("rb"))
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string
                  and all(m.string if isinstance(m.string, tuple) else [m.string])}
    assert used - translated == set()


def test_the_shipped_mo_file_is_compiled_from_the_po_file():
    def entries(catalog):
        return {_hashable(m.id): _hashable(m.string) for m in catalog if m.id}

    po = entries(read_po(PO.open("rb")))
    mo = entries(read_mo(io.BytesIO(MO.read_bytes())))
    assert po == mo, "run: pybabel compile -d webui/translations"


def _hashable(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


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
