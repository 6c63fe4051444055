"""Working-time deadlines: the Russian production calendar by default, per company and team."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from engine.deadlines.calendar import BusinessCalendars, CalendarError, WorkingCalendar, parse_duration
from engine.runtime import Engine
from support import TEST_BPMN
from support.engine import Clock

MOSCOW = ZoneInfo("Europe/Moscow")
calendar = WorkingCalendar()  # Moscow, Mon-Fri 09:00-13:00 and 14:00-18:00, Russian holidays


def moscow(*args) -> datetime:
    return datetime(*args, tzinfo=MOSCOW)


def test_eight_working_hours_from_friday_evening_land_on_monday():
    # 1 h on Friday (17-18), then Monday 09-13 and 14-17.
    assert calendar.add(moscow(2026, 11, 20, 17), "PT8H") == moscow(2026, 11, 23, 17)


def test_a_start_at_night_counts_from_the_next_morning():
    assert calendar.add(moscow(2026, 11, 24, 22, 30), "PT2H") == moscow(2026, 11, 25, 11)
    assert calendar.add(moscow(2026, 11, 25, 3), "PT30M") == moscow(2026, 11, 25, 9, 30)


def test_the_lunch_break_is_not_working_time():
    assert calendar.add(moscow(2026, 11, 24, 12, 30), "PT1H") == moscow(2026, 11, 24, 14, 30)


def test_new_year_holidays_are_skipped():
    # 30 Dec 2026 is the last working day: 31 Dec is a transferred day off, 1-10 Jan 2027 are off.
    assert calendar.add(moscow(2026, 12, 30, 17), "PT8H") == moscow(2027, 1, 11, 17)
    assert calendar.add(moscow(2026, 12, 30, 10), "P1D") == moscow(2027, 1, 11, 10)


def test_may_holidays_are_skipped():
    # 1 May 2026 is a Friday; 9 May a Saturday, moved to Monday 11 May.
    assert calendar.add(moscow(2026, 4, 30, 15), "P1D") == moscow(2026, 5, 4, 15)
    assert calendar.add(moscow(2026, 5, 8, 17), "PT2H") == moscow(2026, 5, 12, 10)


def test_a_transferred_working_saturday_counts():
    # Saturday 1 November 2025 was a working day (its day off moved to Monday 3 November).
    assert calendar.is_working_day(moscow(2025, 11, 1).date())
    assert not calendar.is_working_day(moscow(2025, 11, 3).date())
    assert calendar.add(moscow(2025, 10, 31, 17), "PT2H") == moscow(2025, 11, 1, 10)
    assert calendar.add(moscow(2025, 11, 1, 17), "PT2H") == moscow(2025, 11, 5, 10)


def test_another_time_zone():
    vladivostok = WorkingCalendar(time_zone="Asia/Vladivostok")
    start = datetime(2026, 11, 23, 7, 0, tzinfo=timezone.utc)  # 17:00 in Vladivostok, 10:00 in Moscow
    assert vladivostok.add(start, "PT2H") == datetime(2026, 11, 24, 0, 0, tzinfo=timezone.utc)  # 10:00 Tue
    assert calendar.add(start, "PT2H") == datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)  # 12:00 Mon


def test_working_days_late_skip_weekends_and_holidays():
    assert calendar.working_days_late(moscow(2026, 11, 20, 17), moscow(2026, 11, 20, 23)) == 0  # same Friday
    assert calendar.working_days_late(moscow(2026, 11, 20, 17), moscow(2026, 11, 22, 12)) == 0  # the weekend
    assert calendar.working_days_late(moscow(2026, 11, 20, 17), moscow(2026, 11, 23, 8)) == 1  # Monday
    # Due on 30 Dec 2026: the New Year holidays are not counted; Monday 11 Jan 2027 is day one.
    assert calendar.working_days_late(moscow(2026, 12, 30, 18), moscow(2027, 1, 10, 12)) == 0
    assert calendar.working_days_late(moscow(2026, 12, 30, 18), moscow(2027, 1, 12, 12)) == 2
    # Days are the calendar's: 23:30 UTC on Sunday is already Monday in Moscow.
    assert calendar.working_days_late(moscow(2026, 11, 20, 17), datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc)) == 1


def test_working_time_between_and_back():
    friday, monday = moscow(2026, 11, 20, 17), moscow(2026, 11, 23, 16)
    assert calendar.working_time_between(friday, monday) == timedelta(hours=7)
    assert calendar.working_time_between(monday, friday) == -timedelta(hours=7)
    assert calendar.subtract_working_time(moscow(2026, 11, 23, 10), timedelta(hours=2)) == moscow(2026, 11, 20, 17)


def test_weeks_and_months_are_calendar_periods_moved_to_working_time():
    assert calendar.add(moscow(2026, 11, 23, 10), "P1W") == moscow(2026, 11, 30, 10)
    # 31 January + 1 month is the end of February; 28 Feb 2026 is a Saturday -> Monday 2 March 09:00.
    assert calendar.add(moscow(2026, 1, 31, 10), "P1M") == moscow(2026, 3, 2, 9)


def test_company_and_team_configuration():
    calendars = BusinessCalendars.from_config({
        "time_zone": "Europe/Moscow",
        "hours": {"mon": ["09:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
                  "thu": ["09:00-18:00"], "fri": ["09:00-17:00"]},
        "days_off": ["2026-11-27"],
        "teams": {"support": {"hours": {day: ["08:00-20:00"] for day in
                                        ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}}},
    })
    # Thursday 17:00 + 2 h: 1 h Thursday, Friday 27th is the company's day off -> Monday 10:00.
    assert calendars(moscow(2026, 11, 26, 17), "PT2H") == moscow(2026, 11, 30, 10)
    support = calendars.for_teams(["nobody", "support"])
    assert support.time_zone == "Europe/Moscow" and support.extra_days_off == calendars.company.extra_days_off
    assert support.add(moscow(2026, 11, 21, 19), "PT2H") == moscow(2026, 11, 22, 9)  # a Sunday shift
    assert calendars.for_teams([None, "sales"]) is calendars.company


@pytest.mark.parametrize("config, message", [
    ({"time_zone": "Mars/Olympus"}, "time zone 'Mars/Olympus' is unknown"),
    ({"hours": {"funday": ["09:00-18:00"]}}, "'funday' is not a weekday"),
    ({"hours": {"mon": ["18:00-09:00"]}}, "must be increasing"),
    ({"hours": {"mon": ["nine to five"]}}, "calendar.hours.mon: 'nine to five' is not an interval"),
    ({"hours": {"mon": []}}, "at least one weekday"),
    ({"country": "XX"}, "country 'XX'"),
    ({"days_off": ["tomorrow"]}, "calendar.days_off"),
    ({"weekend": "sun"}, "unknown setting(s) ['weekend']"),
])
def test_bad_configuration_says_what_is_wrong(config, message):
    with pytest.raises(CalendarError) as error:
        BusinessCalendars.from_config(config)
    assert message in str(error.value)


def test_bad_durations_and_naive_moments_are_refused():
    with pytest.raises(CalendarError, match="'2 days' is not an ISO 8601 duration"):
        parse_duration("2 days")
    with pytest.raises(CalendarError, match="naive datetime"):
        calendar.add(datetime(2026, 11, 23, 9), "PT1H")
    assert parse_duration("P1DT4H30M").working == timedelta(hours=4, minutes=30)


def test_no_working_time_at_all_is_an_error_not_a_hang():
    closed = WorkingCalendar(country=None, hours={0: ((time(9), time(10)),)},
                             extra_days_off=frozenset(moscow(2026, 11, 23).date() + timedelta(days=7 * n)
                                                      for n in range(200)))
    with pytest.raises(CalendarError, match="no working time"):
        closed.add(moscow(2026, 11, 23, 8), "PT2H")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_engine_counts_due_dates_in_working_time(database_url):
    calendars = BusinessCalendars(teams={"heads": WorkingCalendar(time_zone="Asia/Vladivostok")})
    clock = Clock(moscow(2026, 11, 20, 17).astimezone(timezone.utc))  # Friday 17:00 in Moscow
    engine = Engine(database_url, clock=clock, due_calculator=calendars)
    engine.init_db()
    engine.add_user("boss", roles=["employee", "manager"])
    engine.add_user("ann", manager="boss")
    engine.add_group("heads", members=["boss"])
    engine.deploy([TEST_BPMN / "approval.bpmn"])
    instance = engine.start("approval", {"curator": "ann", "amount": 5000}, started_by="ann")
    [item] = engine.work_items(instance_id=instance.id)
    assert item.due_at == calendars(clock(), "P2D") == moscow(2026, 11, 24, 17)
    # The review sits in the heads' lane, and the heads work in Vladivostok: Friday 17:00 in
    # Moscow is already Saturday there, so its 4 hours are Monday 09:00-13:00, Vladivostok time.
    engine.complete(item.id, {"discount": 10}, "ann")
    [review] = engine.work_items(instance_id=instance.id)
    assert review.name == "Review discount"
    assert review.due_at == datetime(2026, 11, 23, 13, tzinfo=ZoneInfo("Asia/Vladivostok"))
    engine.dispose()
