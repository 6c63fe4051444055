"""Working time: the business calendar that deadlines and escalations are counted in.

A ``WorkingCalendar`` knows a company's (or a team's) working hours per weekday, its time
zone, the country's public holidays and the weekend days that a production calendar
turns into working days. Holidays and transferred days come from the maintained
``holidays`` library (the Russian production calendar by default), never from a table
typed in here; a company adds its own days off and working days on top.

Durations follow ISO 8601 and are counted the way people in an office count them:

- ``H``, ``M`` (minutes), ``S`` are *working* time: "PT8H" from Friday 17:00 is Monday 16:00;
- ``D`` are *working days*: "P2D" is the same working moment two working days later;
- ``W``, ``M`` (months), ``Y`` are calendar periods ("in a week", "in a month"), moved
  forward to the next working moment when they end outside working hours.

``BusinessCalendars`` holds the company's calendar and the teams' overrides; it is what
``Engine(due_calculator=...)`` takes.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holiday_data

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The Russian standard 40-hour week: 09:00-18:00 with an hour's lunch break.
STANDARD_DAY = ((time(9), time(13)), (time(14), time(18)))
# No calendar has a working moment further away than this: beyond it, the calendar is wrong.
MAX_SEARCH_DAYS = 3 * 366

_DURATION = re.compile(
    r"^P(?!$)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$"
)

Interval = tuple[time, time]


class CalendarError(ValueError):
    """A calendar configuration or a duration that cannot be used; says what and where."""


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    working: timedelta = timedelta(0)  # the H/M/S part, counted in working time


def parse_duration(text: str) -> Duration:
    match = _DURATION.match(text.strip().upper()) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"{text!r} is not an ISO 8601 duration such as P2D, PT8H or P1DT4H")
    parts = match.groupdict()

    def number(name: str) -> float:
        return float((parts[name] or "0").replace(",", "."))

    return Duration(
        years=int(number("years")),
        months=int(number("months")),
        weeks=int(number("weeks")),
        days=int(number("days")),
        working=timedelta(hours=number("hours"), minutes=number("minutes"), seconds=number("seconds")),
    )


@dataclass(frozen=True)
class WorkingCalendar:
    """Working hours, time zone, holidays and transferred working days of one company or team."""

    time_zone: str = "Europe/Moscow"
    # Working intervals per weekday (0 = Monday); a weekday without intervals is a day off.
    hours: Mapping[int, tuple[Interval, ...]] = field(
        default_factory=lambda: {day: STANDARD_DAY for day in range(5)}
    )
    # ISO country code for the ``holidays`` library (None: no public holidays at all).
    country: str | None = "RU"
    subdivision: str | None = None
    extra_days_off: frozenset[date] = frozenset()
    extra_working_days: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CalendarError(f"time zone {self.time_zone!r} is unknown (use e.g. Europe/Moscow)") from None
        for day, intervals in self.hours.items():
            if day not in range(7):
                raise CalendarError(f"weekday {day!r} is not 0 (Monday) .. 6 (Sunday)")
            previous_end = time(0)
            for start, end in intervals:
                if not previous_end <= start < end:
                    raise CalendarError(
                        f"working hours of {WEEKDAYS[day]} must be increasing, non-overlapping intervals; "
                        f"got {_format_intervals(intervals)}"
                    )
                previous_end = end
        if not any(self.hours.values()):
            raise CalendarError("a calendar needs working hours on at least one weekday")
        if self.country is not None:
            self._public_holidays()  # an unknown country fails now, not at the first deadline

    # -- days ----------------------------------------------------------------------------

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def is_working_day(self, day: date) -> bool:
        if day in self.extra_working_days:
            return True
        if day in self.extra_days_off:
            return False
        public = self._public_holidays()
        if public is not None:
            if day in public:  # also loads the year, and with it its transferred working days
                return False
            if day in public.weekend_workdays:
                return True
        return bool(self.hours.get(day.weekday()))

    def day_intervals(self, day: date) -> list[tuple[datetime, datetime]]:
        """The working intervals of a day as aware UTC datetimes."""
        if not self.is_working_day(day):
            return []
        # A transferred working day (a Saturday made working) keeps a normal weekday's hours.
        intervals = self.hours.get(day.weekday()) or self._regular_day()
        zone = self.zone
        return [
            (datetime.combine(day, start, zone).astimezone(timezone.utc),
             datetime.combine(day, end, zone).astimezone(timezone.utc))
            for start, end in intervals
        ]

    # -- moments -------------------------------------------------------------------------

    def add(self, start: datetime, duration: str | Duration | timedelta) -> datetime:
        """The moment ``duration`` of working time after ``start`` (see the module's rules)."""
        start = _aware(start)
        if isinstance(duration, timedelta):
            return self.add_working_time(start, duration)
        parsed = duration if isinstance(duration, Duration) else parse_duration(duration)
        moment = start
        if parsed.years or parsed.months or parsed.weeks:
            local = moment.astimezone(self.zone)
            month_index = local.month - 1 + parsed.months + 12 * parsed.years
            year, month = local.year + month_index // 12, month_index % 12 + 1
            local = local.replace(year=year, month=month, day=min(local.day, _days_in_month(year, month)))
            moment = (local + timedelta(weeks=parsed.weeks)).astimezone(timezone.utc)
        if parsed.days:
            moment = self.add_working_days(moment, parsed.days)
        if parsed.working:
            return self.add_working_time(moment, parsed.working)
        return self.next_working_moment(moment)

    def __call__(self, start: datetime, duration: str) -> datetime:
        """The Engine's ``due_calculator``: a dueDate duration counted in working time."""
        return self.add(start, duration)

    def next_working_moment(self, moment: datetime) -> datetime:
        """``moment`` itself when it falls in working hours, else the start of the next ones."""
        moment = _aware(moment)
        for start, end in self._intervals_from(moment):
            if moment < end:
                return max(moment, start)
        raise AssertionError("unreachable: _intervals_from raises when it runs out")

    def add_working_time(self, start: datetime, amount: timedelta) -> datetime:
        if amount < timedelta(0):
            return self.subtract_working_time(start, -amount)
        start = _aware(start)
        remaining = amount
        for interval_start, interval_end in self._intervals_from(start):
            begin = max(start, interval_start)
            if begin >= interval_end:
                continue
            available = interval_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable")

    def subtract_working_time(self, end: datetime, amount: timedelta) -> datetime:
        end = _aware(end)
        remaining = amount
        local_day = end.astimezone(self.zone).date()
        for offset in range(MAX_SEARCH_DAYS):
            for interval_start, interval_end in reversed(self.day_intervals(local_day - timedelta(days=offset))):
                finish = min(end, interval_end)
                if finish <= interval_start:
                    continue
                available = finish - interval_start
                if remaining <= available:
                    return finish - remaining
                remaining -= available
        raise CalendarError(f"no working time in the {MAX_SEARCH_DAYS} days before {end.isoformat()}")

    def add_working_days(self, start: datetime, days: int) -> datetime:
        """The same working moment ``days`` working days later (a start outside working
        hours counts from the next working moment)."""
        moment = self.next_working_moment(start)
        worked = self.working_time_between(self._day_start(moment), moment)
        day = moment.astimezone(self.zone).date()
        counted = 0
        for offset in range(1, MAX_SEARCH_DAYS):
            candidate = day + timedelta(days=offset)
            if self.is_working_day(candidate):
                counted += 1
                if counted == days:
                    first = self.day_intervals(candidate)[0][0]
                    return self.add_working_time(first, worked)
        raise CalendarError(f"no {days} working days in the {MAX_SEARCH_DAYS} days after {start.isoformat()}")

    def working_days_late(self, due: datetime, now: datetime) -> int:
        """Working days from the day after ``due`` up to and including today, in the calendar's
        time zone: an item due on Friday is 1 working day late on Monday, 0 on Friday itself."""
        due, now = _aware(due), _aware(now)
        if now <= due:
            return 0
        day, today = due.astimezone(self.zone).date(), now.astimezone(self.zone).date()
        late = 0
        while day < today:
            day += timedelta(days=1)
            late += self.is_working_day(day)
        return late

    def working_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Working time from ``start`` to ``end`` (negative when ``end`` is earlier)."""
        start, end = _aware(start), _aware(end)
        if end < start:
            return -self.working_time_between(end, start)
        total = timedelta(0)
        day = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        while day <= last:
            for interval_start, interval_end in self.day_intervals(day):
                overlap = min(end, interval_end) - max(start, interval_start)
                if overlap > timedelta(0):
                    total += overlap
            day += timedelta(days=1)
        return total

    # -- internals -----------------------------------------------------------------------

    def _intervals_from(self, moment: datetime) -> Iterable[tuple[datetime, datetime]]:
        # From the day before in local time: an interval may cross midnight in UTC.
        day = moment.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(MAX_SEARCH_DAYS):
            for interval in self.day_intervals(day + timedelta(days=offset)):
                if interval[1] > moment:
                    yield interval
        raise CalendarError(f"no working time in the {MAX_SEARCH_DAYS} days after {moment.isoformat()}: "
                            "check the calendar's working hours and days off")

    def _day_start(self, moment: datetime) -> datetime:
        intervals = self.day_intervals(moment.astimezone(self.zone).date())
        return intervals[0][0] if intervals else moment

    def _regular_day(self) -> tuple[Interval, ...]:
        return next(self.hours[day] for day in sorted(self.hours) if self.hours[day])

    def _public_holidays(self):
        if self.country is None:
            return None
        return _country_holidays(self.country, self.subdivision)

    # -- configuration -------------------------------------------------------------------

    @classmethod
    def from_config(cls, config: Mapping, base: WorkingCalendar | None = None, where: str = "calendar") -> WorkingCalendar:
        """Build from a JSON-like mapping; keys not given are taken from ``base``::

            {"time_zone": "Europe/Moscow", "country": "RU",
             "hours": {"mon": ["09:00-13:00", "14:00-18:00"], ..., "sat": []},
             "days_off": ["2026-12-30"], "working_days": ["2026-12-26"]}
        """
        base = base or cls()
        unknown = set(config) - {"time_zone", "country", "subdivision", "hours", "days_off", "working_days", "teams"}
        if unknown:
            raise CalendarError(f"{where}: unknown setting(s) {sorted(unknown)}")
        hours = dict(base.hours)
        if "hours" in config:
            hours = {}
            for name, intervals in config["hours"].items():
                if name.lower()[:3] not in WEEKDAYS:
                    raise CalendarError(f"{where}.hours: {name!r} is not a weekday (mon..sun)")
                hours[WEEKDAYS.index(name.lower()[:3])] = tuple(
                    _parse_interval(text, f"{where}.hours.{name}") for text in intervals
                )
        try:
            return cls(
                time_zone=config.get("time_zone", base.time_zone),
                hours=hours,
                country=config.get("country", base.country),
                subdivision=config.get("subdivision", base.subdivision),
                extra_days_off=frozenset(_dates(config["days_off"], f"{where}.days_off")) if "days_off" in config
                else base.extra_days_off,
                extra_working_days=frozenset(_dates(config["working_days"], f"{where}.working_days"))
                if "working_days" in config else base.extra_working_days,
            )
        except CalendarError as problem:
            raise CalendarError(f"{where}: {problem}") from None


class BusinessCalendars:
    """The company's calendar and the teams' own (a team is a group: a lane or a candidate group).

    Callable as the Engine's ``due_calculator`` (the company calendar); ``for_teams``
    picks the calendar of the first team that has one."""

    def __init__(self, company: WorkingCalendar | None = None, teams: Mapping[str, WorkingCalendar] | None = None):
        self.company = company or WorkingCalendar()
        self.teams = dict(teams or {})

    def __call__(self, start: datetime, duration: str) -> datetime:
        return self.company.add(start, duration)

    def for_teams(self, teams: Sequence[str | None]) -> WorkingCalendar:
        for team in teams:
            if team in self.teams:
                return self.teams[team]
        return self.company

    @classmethod
    def from_config(cls, config: Mapping) -> BusinessCalendars:
        """The company settings at the top level, each team's differences under "teams"."""
        company = WorkingCalendar.from_config(config)
        teams = config.get("teams", {})
        if not isinstance(teams, Mapping):
            raise CalendarError("calendar.teams must map team (group) names to settings")
        return cls(company, {
            name: WorkingCalendar.from_config(settings, base=company, where=f"calendar.teams.{name}")
            for name, settings in teams.items()
        })

    @classmethod
    def from_environment(cls) -> BusinessCalendars:
        """``CRMFLOW_CALENDAR``: a JSON file with the settings; without it, the Russian
        production calendar, Moscow time, Monday to Friday 09:00-18:00 with lunch 13-14."""
        path = os.environ.get("CRMFLOW_CALENDAR")
        if not path:
            return cls()
        try:
            config = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as problem:
            raise CalendarError(f"CRMFLOW_CALENDAR={path}: cannot read the calendar: {problem}") from None
        if not isinstance(config, Mapping):
            raise CalendarError(f"CRMFLOW_CALENDAR={path}: must hold a JSON object")
        return cls.from_config(config)


@lru_cache(maxsize=32)
def _country_holidays(country: str, subdivision: str | None):
    try:
        return holiday_data.country_holidays(country, subdiv=subdivision)
    except NotImplementedError:
        raise CalendarError(f"country {country!r} has no holiday calendar in the holidays library") from None
    except Exception as problem:  # the library raises plain errors for a bad subdivision
        raise CalendarError(f"country {country!r}, subdivision {subdivision!r}: {problem}") from None


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise CalendarError(f"naive datetime {moment!r}: pass an aware (UTC) moment")
    return moment.astimezone(timezone.utc)


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _parse_interval(text: str, where: str) -> Interval:
    try:
        start, end = (time.fromisoformat(part.strip()) for part in str(text).split("-"))
    except ValueError:
        raise CalendarError(f"{where}: {text!r} is not an interval like 09:00-13:00") from None
    return start, end


def _dates(values, where: str) -> list[date]:
    try:
        return [date.fromisoformat(str(value)) for value in values]
    except (TypeError, ValueError):
        raise CalendarError(f"{where}: expected a list of dates like 2026-12-30, got {values!r}") from None


def _format_intervals(intervals) -> str:
    return ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in intervals)


def due_calculator_for(calculator, lane: str | None, candidate_groups: str | None):
    """The calculator of a user task's team: its lane, or its literal candidate groups,
    when ``calculator`` is a ``BusinessCalendars`` with a calendar for that team."""
    if not isinstance(calculator, BusinessCalendars):
        return calculator
    teams = [lane] if lane else []
    if candidate_groups and "{" not in candidate_groups:
        teams += [name.strip() for name in candidate_groups.split(",")]
    return calculator.for_teams(teams)


def business_calendars_of(calculator) -> BusinessCalendars | None:
    """The business calendars behind an Engine's ``due_calculator``, if it counts working time."""
    if isinstance(calculator, BusinessCalendars):
        return calculator
    if isinstance(calculator, WorkingCalendar):
        return BusinessCalendars(calculator)
    return None
