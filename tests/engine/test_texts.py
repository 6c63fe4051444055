"""Texts for people rendered in their language from the catalogs; errors with a stable code,
their parameters and an English str()."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.errors import InstanceNotFound, NotFound, ProcessFailed, UnknownUser, WorkItemClosed
from engine.texts import Listing, Moment, Text, _, language_of, ngettext


@pytest.mark.parametrize(("count", "russian", "english"), [
    (1, "1 минута", "1 minute"), (2, "2 минуты", "2 minutes"), (5, "5 минут", "5 minutes"),
    (11, "11 минут", "11 minutes"), (21, "21 минута", "21 minutes"), (22, "22 минуты", "22 minutes"),
    (0, "0 минут", "0 minutes"),
])
def test_a_count_takes_the_plural_form_of_the_readers_language(count, russian, english):
    minutes = ngettext("%(num)d minute", "%(num)d minutes", count)
    assert (minutes.render("ru"), minutes.render("en"), str(minutes)) == (russian, english, english)


def test_parameters_are_rendered_in_the_same_language_as_the_text():
    late = _("Late by: %(span)s", span=Listing([ngettext("%(num)d day", "%(num)d days", 1),
                                                  ngettext("%(num)d hour", "%(num)d hours", 3)], " "))
    assert late.render("ru") == "Просрочка: 1 день 3 часа"
    assert late.render("en") == "Late by: 1 day 3 hours"
    assert late.arguments("ru") == {"span": ["1 день", "3 часа"]}


def test_a_moment_is_shown_in_the_readers_format_and_the_given_zone():
    moment = Moment(datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc), ZoneInfo("Europe/Moscow"))
    assert moment.render("ru") == "23.11.2026, 18:00 (Europe/Moscow)"
    assert moment.render("en") == "11/23/26, 6:00\u202fPM (Europe/Moscow)"
    assert Moment(datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)).render("ru") == "23.11.2026, 15:00 UTC"


def test_russian_first_and_english_for_any_other_language():
    assert [language_of(code) for code in (None, "", "ru", "ru_RU", "ru-RU", "en", "en_GB", "de")] == [
        "ru", "ru", "ru", "ru", "ru", "en", "en", "en"]
    assert _("is required").render(None) == "обязательное поле"
    assert _("is required").render("de") == "is required"


def test_a_literal_text_is_shown_as_it_is_in_every_language():
    text = Text.literal("name 'x' is not defined (100%)")
    assert text.render("ru") == text.render("en") == str(text) == "name 'x' is not defined (100%)"


def test_an_error_has_a_code_its_parameters_an_english_str_and_a_russian_rendering():
    unknown = UnknownUser("mallory")
    assert (unknown.code, unknown.params, str(unknown)) == (
        "unknown_user", {"username": "mallory"}, "There is no crmflow user called 'mallory'.")
    assert unknown.render("ru") == "Пользователя crmflow с именем «mallory» нет."
    assert isinstance(unknown, NotFound)

    closed = WorkItemClosed(7, "completed", "ann")
    assert (closed.code, str(closed)) == ("work_item_closed", "Work item 7 is already completed by ann.")
    assert closed.render("ru") == "Задача 7 уже выполнена пользователем ann."
    assert InstanceNotFound(9).render("ru") == "Экземпляра процесса 9 нет."

    coded = NotFound(_("There is no group called '%(group)s'.", group="sales"), code="group_not_found")
    assert (coded.code, coded.params) == ("group_not_found", {"group": "sales"})
    # An error whose message is not translated (a script's own words) is shown as it is.
    failed = ProcessFailed("'compute' (Compute): division by zero")
    assert (failed.code, failed.render("ru"), failed.params) == (
        "process_failed", "'compute' (Compute): division by zero", {})
