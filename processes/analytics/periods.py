"""Periods of whole days in a time zone, and the UTC windows they cover."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class Window:
    """A half-open span of time in UTC: ``start <= t < end``."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Period:
    """Whole days, ``first`` to ``last`` inclusive, in a time zone's calendar."""

    first: date
    last: date

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"the period ends ({self.last}) before it starts ({self.first})")

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    def window(self, zone: ZoneInfo) -> Window:
        return Window(midnight(self.first, zone), midnight(self.last + timedelta(days=1), zone))

    @property
    def whole_months(self) -> int | None:
        """How many calendar months the period is, if it is whole months."""
        after = self.last + timedelta(days=1)
        if self.first.day != 1 or after.day != 1:
            return None
        return (after.year - self.first.year) * 12 + after.month - self.first.month

    def previous(self) -> Period:
        """The period just before, as long: the months before when the period is whole
        months (March's previous is February), else as many days."""
        months = self.whole_months
        if months is not None:
            first = _add_months(self.first, -months)
            return Period(first, self.first - timedelta(days=1))
        return Period(self.first - timedelta(days=self.days), self.first - timedelta(days=1))

    def year_before(self) -> Period:
        return Period(_year_before(self.first), _year_before(self.last))

    def months(self) -> list[Period]:
        """The calendar months the period covers, the first and last cut to the period."""
        months, first = [], self.first
        while first <= self.last:
            following = _add_months(first.replace(day=1), 1)
            months.append(Period(first, min(self.last, following - timedelta(days=1))))
            first = following
        return months


def midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


def _year_before(day: date) -> date:
    return day.replace(year=day.year - 1, day=28) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - 1)
