"""Working days in SQL: the company calendar written to ``analytics_calendar_days``, one row
per day with the number of working days so far."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib.metadata import version as package_version
from typing import Any

from sqlalchemy import Date, Index, String, and_, case, cast, delete, func, insert, select
from sqlalchemy import Engine as DatabaseEngine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.sql import ColumnElement, Select

from engine.db import Base, UTCDateTime, session_factories
from engine.deadlines.calendar import WorkingCalendar
from processes.analytics.periods import midnight


class CalendarDay(Base):
    """One day of a working calendar, with the working days counted up to it.

    Derived data: written from ``engine.calendar.WorkingCalendar`` when an analytics
    query needs days it does not hold yet, keyed by a fingerprint of the calendar's
    settings (a changed calendar gets rows of its own). Lives here rather than in
    ``processes.models`` because nothing but the analytics reads it."""

    __tablename__ = "analytics_calendar_days"
    __table_args__ = (Index("ix_analytics_calendar_days_start", "calendar", "starts_at"),)

    calendar: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    # The day's local midnight, in UTC: a moment belongs to the last day started before it.
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Working days from the first row's day up to and including this one.
    working_day_number: Mapped[int]


# Read once: the installed package's metadata lookup costs milliseconds on every page, and
# the holidays module this process loaded does not change until it restarts.
HOLIDAYS_VERSION = package_version("holidays")


def calendar_key(calendar: WorkingCalendar) -> str:
    """A fingerprint of everything that decides which days are working days, the holiday
    data's version included."""
    settings = {
        "zone": calendar.time_zone,
        "hours": sorted(day for day, intervals in calendar.hours.items() if intervals),
        "country": calendar.country,
        "subdivision": calendar.subdivision,
        "off": sorted(str(day) for day in calendar.extra_days_off),
        "on": sorted(str(day) for day in calendar.extra_working_days),
        "holidays": HOLIDAYS_VERSION,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class WorkingDays:
    """Counts working days in SQL: ``number_at(moment)`` is the number of the working day
    the moment falls in (or of the last one before it, on a day off)."""

    key: str
    zone: str  # the calendar's time zone, in which its days begin

    def number_at(self, moment) -> ColumnElement[int]:
        return (select(CalendarDay.working_day_number)
                .where(CalendarDay.calendar == self.key, CalendarDay.starts_at <= moment)
                .order_by(CalendarDay.starts_at.desc()).limit(1).scalar_subquery())

    def between(self, earlier, later) -> ColumnElement[int]:
        """Working days after ``earlier``'s day up to and including ``later``'s day."""
        return self.number_at(later) - self.number_at(earlier)

    def numbered(self, session: Session, query: Select, *moments, where: ColumnElement[bool] | None = None
                 ) -> tuple[Select, list[ColumnElement[int]]]:
        """``query`` made able to select the numbers of ``moments``' working days, and
        those numbers, for queries over many rows (``number_at`` suits a few); with
        ``where``, only the rows where it holds are numbered, the others get NULL.

        On PostgreSQL an outer join per moment to its day in the calendar's zone: one
        hash join each, where a lookup per row costs PostgreSQL an index descent each,
        several times as much. SQLite has no time zones, and its lookups are cheap.
        The calendar must hold the moments' days (``prepare_working_days``)."""

        def only_where(value: ColumnElement) -> ColumnElement:
            return value if where is None else case((where, value))

        if session.get_bind().dialect.name != "postgresql":
            return query, [only_where(self.number_at(moment)) for moment in moments]
        numbers = []
        for moment in moments:
            day = aliased(CalendarDay)
            query = query.outerjoin(day, and_(day.calendar == self.key,
                                              day.day == only_where(cast(func.timezone(self.zone, moment), Date))))
            numbers.append(day.working_day_number)
        return query, numbers


def prepare_working_days(db: DatabaseEngine, calendar: WorkingCalendar, first: date, last: date) -> WorkingDays:
    """The calendar's days from ``first`` to ``last`` in ``analytics_calendar_days``.

    Usually a single count query; a range not written yet is written in one write
    transaction, as one run of days from the earliest to the latest day needed so that
    numbers stay consecutive. Two servers that fill it at once: the second one's insert
    fails on the primary key, and it finds the first one's rows on its retry."""
    working_days = WorkingDays(calendar_key(calendar), calendar.time_zone)
    read, write = session_factories(db)
    with read() as session:
        if _calendar_covers(session, working_days.key, first, last):
            return working_days
    for attempt in range(2):
        try:
            with write.begin() as session:
                if _calendar_covers(session, working_days.key, first, last):
                    return working_days
                held_first, held_last = session.execute(
                    select(func.min(CalendarDay.day), func.max(CalendarDay.day))
                    .where(CalendarDay.calendar == working_days.key)).one()
                start = min(first, held_first or first)
                end = max(last, held_last or last)
                session.execute(delete(CalendarDay).where(CalendarDay.calendar == working_days.key))
                session.execute(insert(CalendarDay), list(_calendar_rows(calendar, working_days.key, start, end)))
            return working_days
        except IntegrityError:
            if attempt:
                raise
    return working_days


def _calendar_covers(session: Session, key: str, first: date, last: date) -> bool:
    held = session.scalar(select(func.count()).select_from(CalendarDay)
                          .where(CalendarDay.calendar == key, CalendarDay.day.between(first, last)))
    return held == (last - first).days + 1


def _calendar_rows(calendar: WorkingCalendar, key: str, first: date, last: date) -> Iterator[dict[str, Any]]:
    number, day = 0, first
    while day <= last:
        number += calendar.is_working_day(day)
        yield {"calendar": key, "day": day, "starts_at": midnight(day, calendar.zone), "working_day_number": number}
        day += timedelta(days=1)
