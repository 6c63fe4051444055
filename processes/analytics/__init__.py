"""Manager analytics: the sales funnel (S5), plan against fact (D4, M1), claims (C6), the
comparison of managers (M2) and the overdue heatmap of a process diagram.

Every figure is computed by the database with SQL aggregation that runs unchanged on
SQLite and PostgreSQL; Python only shapes the few aggregate rows that come back. The
building blocks that the two backends spell differently are here:

- ``days_between``: the time between two moments in (fractional) days: SQLite's
  ``julianday`` difference, PostgreSQL's epoch of the interval;
- percentiles (``_percentiles``): linear interpolation between the two ranks around
  ``(n - 1) * p`` (Python's ``statistics.quantiles(..., method="inclusive")``):
  PostgreSQL's own ``percentile_cont``; on SQLite, which has no percentile aggregate, one
  that ``engine.db`` registers;
- months: local calendar months as a ``CASE`` over their UTC boundaries, so no backend
  needs a time-zone database;
- working days: the company's working calendar (``engine.calendar``) is written to the
  table ``analytics_calendar_days``, one row per day with the number of working days so
  far, and a moment's number is looked up by its day's start (an index seek; for many
  rows on PostgreSQL, joined on the moment's day in the calendar's time zone): working
  days late = number(when it was done, or now) - number(when it was due), exactly what
  ``WorkingCalendar.working_days_late`` counts, holidays and time zone included.

Periods are cohorts where a cohort is meant: the funnel follows the deals *opened* in the
period and the claims' structure the claims *registered* in it; the monthly claim counts,
the comparison of managers and the heatmap count events when they happened.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from importlib.metadata import version as package_version
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Date,
    Float,
    Index,
    Integer,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy import Engine as DatabaseEngine
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Mapped, Session, aliased, mapped_column
from sqlalchemy.sql import ColumnElement, Select, Subquery
from sqlalchemy.sql.functions import FunctionElement

from engine.db import Base, UTCDateTime, session_factories, sqlite_percentiles
from engine.deadlines.calendar import WorkingCalendar
from engine.deadlines.escalation import BREACH, HEAD
from engine.models import Escalation, EscalationStatus, ItemStatus, ProcessInstance, User, WorkItem
from engine.runtime.queries import ORDER as WORK_ITEM_ORDER
from engine.runtime.queries import WorkItemQuery
from processes.models import Claim, ClaimStatus, Customer, Deal, DealKind, DealMove, DealStagePlan, DealStatus
from processes.stages import STAGE_CODES, WON

MEDIAN, P90 = (1, 2), (9, 10)  # percentiles as exact fractions: integer SQL arithmetic picks the ranks
FUNNEL_KINDS = (DealKind.TYPICAL.value, DealKind.MANUAL.value)  # the kinds with stages
RESOLUTIONS = ("satisfied", "partly_satisfied", "rejected")


# -- SQL building blocks ------------------------------------------------------------------


class days_between(FunctionElement):
    """``later - earlier`` in days, with the fraction: one expression, two dialects."""

    type = Float()
    name = "days_between"
    inherit_cache = True


@compiles(days_between, "sqlite")
def _days_between_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"(julianday({later}) - julianday({earlier}))"


@compiles(days_between, "postgresql")
def _days_between_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    # Double precision, not EXTRACT's numeric: percentiles sort these values, and numeric sorts slowly.
    return f"(CAST(EXTRACT(EPOCH FROM ({later} - {earlier})) AS DOUBLE PRECISION) / 86400)"


class dates_apart(FunctionElement):
    """Whole days from one ``DATE`` to a later one."""

    type = Integer()
    name = "dates_apart"
    inherit_cache = True


@compiles(dates_apart, "sqlite")
def _dates_apart_sqlite(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


@compiles(dates_apart, "postgresql")
def _dates_apart_postgresql(element, compiler, **kw):
    later, earlier = (compiler.process(argument, **kw) for argument in element.clauses)
    return f"({later} - {earlier})"


def _moment(value: datetime) -> ColumnElement[datetime]:
    """A bound UTC moment (stored naive on SQLite, as the columns are)."""
    return literal(value, UTCDateTime())


def _day(value: date) -> ColumnElement[date]:
    return literal(value, Date())


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(_flag(condition)), 0)


def _within(column, window: Window) -> ColumnElement[bool]:
    return and_(column >= window.start, column < window.end)


def _percentiles(session: Session, samples: Subquery, fractions: Sequence[tuple[int, int]]
                 ) -> dict[Any, list[float | None]]:
    """Percentiles of ``samples.c.value`` per group of the samples' other columns (the
    dictionary's key: that column's value, or a tuple of several); see ``_percentiles_of``."""
    keys = [column for column in samples.c if column.name != "value"]
    query = (select(*keys, _percentiles_of(session, samples.c.value, fractions))
             .where(samples.c.value.is_not(None)).group_by(*keys))
    return {key[0] if len(keys) == 1 else tuple(key): _percentile_values(values, fractions)
            for *key, values in session.execute(query)}


def _percentiles_of(session: Session, value: ColumnElement, fractions: Sequence[tuple[int, int]]) -> ColumnElement:
    """An aggregate of ``value`` (NULLs skipped) that gives its percentiles by linear
    interpolation between the values around rank ``(n - 1) * p``, read by
    ``_percentile_values``: PostgreSQL's ``percentile_cont`` over an array of fractions; on
    SQLite the aggregate that ``engine.db`` registers on the session's connection for these
    fractions, which answers the same as a JSON array. ``p`` is an exact fraction
    ``numerator / denominator``."""
    if session.get_bind().dialect.name == "postgresql":
        wanted = postgresql.array([literal(numerator / denominator, Float) for numerator, denominator in fractions])
        return func.percentile_cont(wanted).within_group(value)
    return getattr(func, sqlite_percentiles(session.connection(), fractions))(value)


def _percentile_values(values: list | str | None, fractions: Sequence[tuple[int, int]]) -> list[float | None]:
    if values is None:  # PostgreSQL, for a group whose values are all NULL
        return [None] * len(fractions)
    values = values if isinstance(values, list) else json.loads(values)
    return [None if value is None else float(value) for value in values]


def for_analysis(session: Session) -> Session:
    """The session's read transaction set up for these queries on PostgreSQL: the sort
    memory they need (at the default 4 MB a year of a company's stage moves sorts on
    disk), no JIT compilation, which costs each of these short queries more than it saves,
    and the cost of a random page read as on an SSD or from memory rather than a spinning
    disk (the default 4): otherwise the planner scans whole tables where looking up the
    few thousand rows a page needs costs a fraction (it scanned all the work items to
    join a month's escalations to them). (SQLite needs none of these.)"""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL random_page_cost = 1.1"))
    return session


def _share(part: int | float, whole: int | float) -> float | None:
    return part / whole if whole else None


# -- periods ------------------------------------------------------------------------------


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
        return Window(_midnight(self.first, zone), _midnight(self.last + timedelta(days=1), zone))

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


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), zone).astimezone(timezone.utc)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


def _year_before(day: date) -> date:
    return day.replace(year=day.year - 1, day=28) if (day.month, day.day) == (2, 29) else day.replace(year=day.year - 1)


# -- working days in SQL ------------------------------------------------------------------


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
        yield {"calendar": key, "day": day, "starts_at": _midnight(day, calendar.zone), "working_day_number": number}
        day += timedelta(days=1)


# -- the sales funnel (S5) ----------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStage:
    stage: str
    entered: int  # deals that entered the stage (a skip over it is no entry)
    reached: int  # deals that got to the stage or beyond: the funnel's width
    converted: int  # deals that got beyond the stage (to the next stage, or won after the last)
    lost: int  # deals lost while at the stage
    median_days: float | None  # length of a stay in the stage (finished stays only)
    p90_days: float | None

    @property
    def conversion(self) -> float | None:
        return _share(self.converted, self.reached)


@dataclass(frozen=True)
class LostReason:
    reason: str | None
    deals: int
    share: float
    cumulative_share: float  # the Pareto line: this reason and every more frequent one


@dataclass(frozen=True)
class Funnel:
    deals: int
    won: int
    lost: int
    in_progress: int
    revenue_won: Decimal
    stages: list[FunnelStage]
    lost_reasons: list[LostReason]
    lost_by_stage: dict[tuple[str | None, str | None], int]  # (stage, reason) -> deals

    @property
    def win_rate(self) -> float | None:
        return _share(self.won, self.won + self.lost)


def _deal_cohort(kinds: Collection[str], window: Window, curators: Collection[int] | None) -> ColumnElement[bool]:
    condition = and_(Deal.kind.in_(list(kinds)), _within(Deal.created_at, window))
    if curators is not None:
        condition = and_(condition, Deal.curator_id.in_(list(curators)))
    return condition


def sales_funnel(session: Session, window: Window, *, kinds: Collection[str] = FUNNEL_KINDS,
                 curators: Collection[int] | None = None) -> Funnel:
    """The funnel of the deals of ``kinds`` opened in ``window`` (their curator among
    ``curators``, when given), from their stage moves."""
    cohort = _deal_cohort(kinds, window, curators)

    # One pass over the cohort's deals, grouped by everything the funnel tells apart.
    outcome: dict[str, list] = defaultdict(lambda: [0, Decimal(0)])
    furthest: dict[str | None, int] = defaultdict(int)
    lost_by_stage: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for status, stage, reason, furthest_stage, deals, revenue in session.execute(
            select(Deal.status, Deal.current_stage, Deal.lost_reason, Deal.furthest_stage, func.count(),
                   func.sum(Deal.amount))
            .where(cohort).group_by(Deal.status, Deal.current_stage, Deal.lost_reason, Deal.furthest_stage)):
        outcome[status][0] += deals
        outcome[status][1] += Decimal(str(revenue or 0))
        furthest[furthest_stage] += deals
        if status == DealStatus.LOST.value:
            lost_by_stage[stage, reason] += deals
    # The width at each stage: the deals whose furthest point is that stage or beyond.
    positions = [*STAGE_CODES, WON]
    reached = [sum(furthest[code] for code in positions[index:]) for index in range(len(positions))]

    # Most frequent first; ties by reason, "no reason given" first.
    per_reason: dict[str | None, int] = defaultdict(int)
    for (_, reason), deals in lost_by_stage.items():
        per_reason[reason] += deals
    all_lost, running, lost_reasons = sum(per_reason.values()), 0, []
    for reason, deals in sorted(per_reason.items(), key=lambda pair: (-pair[1], pair[0] or "")):
        running += deals
        lost_reasons.append(LostReason(reason, deals, deals / all_lost, running / all_lost))

    # One pass over the cohort's moves into stages: first entries, and the finished stays'
    # lengths (a stay still going on has none yet).
    entered, times = {}, {}
    for stage, first_entries, values in session.execute(
            select(DealMove.to_stage, _count_if(DealMove.first_entry),
                   _percentiles_of(session, DealMove.stay_days, (MEDIAN, P90)))
            .where(_moves_of(kinds, window, curators), DealMove.to_stage.in_(STAGE_CODES))
            .group_by(DealMove.to_stage)):
        entered[stage], times[stage] = first_entries, _percentile_values(values, (MEDIAN, P90))

    stages = []
    for index, code in enumerate(STAGE_CODES):
        median, p90 = times.get(code, (None, None))
        stages.append(FunnelStage(
            stage=code, entered=entered.get(code, 0), reached=reached[index], converted=reached[index + 1],
            lost=sum(deals for (stage, _), deals in lost_by_stage.items() if stage == code),
            median_days=median, p90_days=p90,
        ))
    won, won_revenue = outcome.get(DealStatus.WON.value, (0, 0))
    return Funnel(
        deals=sum(deals for deals, _ in outcome.values()),
        won=won,
        lost=outcome.get(DealStatus.LOST.value, (0, 0))[0],
        in_progress=outcome.get(DealStatus.IN_PROGRESS.value, (0, 0))[0],
        revenue_won=Decimal(won_revenue).quantize(Decimal("0.01")),
        stages=stages,
        lost_reasons=lost_reasons,
        lost_by_stage=dict(lost_by_stage),
    )


def _moves_of(kinds: Collection[str], window: Window, curators: Collection[int] | None) -> ColumnElement[bool]:
    """The stage moves of the funnel's cohort. Each move carries its deal's kind and
    opening (``DealMove``), so everyone's deals are read as a range of the funnel's index
    per stage and kind. A deal's curator can change, so it is not copied to the moves: the
    deals of some curators are found among the deals first, their moves by the (deal, id)
    index."""
    if curators is None:
        return and_(DealMove.deal_kind.in_(list(kinds)), _within(DealMove.deal_created_at, window))
    return DealMove.deal_id.in_(select(Deal.id).where(_deal_cohort(kinds, window, curators)))


# -- plan against fact (D4, M1) -----------------------------------------------------------


@dataclass(frozen=True)
class StageBehind:
    stage: str
    open: int  # in progress at the stage (deals) or in the state (claims)
    behind: int
    median_days: float | None  # how far behind, among those behind
    max_days: int | None


@dataclass(frozen=True)
class DealBehind:
    deal_id: int
    number: str | None
    title: str
    kind: str
    customer: str
    curator: str
    stage: str
    planned_end: date
    days_behind: int  # calendar days: the plan is in calendar days (processes.stages)


@dataclass(frozen=True)
class ClaimBehind:
    claim_id: int
    number: str | None
    customer: str
    reason: str
    status: str
    responsible: str | None
    response_due_at: datetime
    working_days_late: int


def _deals_in_progress(curators: Collection[int] | None) -> ColumnElement[bool]:
    condition = and_(Deal.status == DealStatus.IN_PROGRESS.value, Deal.current_stage.is_not(None))
    if curators is not None:
        condition = and_(condition, Deal.curator_id.in_(list(curators)))
    return condition


def deals_behind_by_stage(session: Session, today: date, curators: Collection[int] | None = None
                          ) -> list[StageBehind]:
    """Per stage: deals in progress there, how many are past the stage's planned end, and by
    how many days (today minus the planned end)."""
    days_behind = dates_apart(_day(today), DealStagePlan.planned_end)
    behind = DealStagePlan.planned_end < today
    samples = (select(Deal.current_stage.label("key"), days_behind.label("value"))
               .join(DealStagePlan, and_(DealStagePlan.deal_id == Deal.id, DealStagePlan.stage == Deal.current_stage))
               .where(_deals_in_progress(curators), behind).subquery())
    medians = _percentiles(session, samples, (MEDIAN,))
    rows = session.execute(
        select(Deal.current_stage, func.count(), _count_if(behind), func.max(case((behind, days_behind))))
        .outerjoin(DealStagePlan, and_(DealStagePlan.deal_id == Deal.id, DealStagePlan.stage == Deal.current_stage))
        .where(_deals_in_progress(curators))
        .group_by(Deal.current_stage)).all()
    by_stage = {stage: (total, late, worst) for stage, total, late, worst in rows}
    return [StageBehind(code, by_stage[code][0], by_stage[code][1], medians.get(code, [None])[0], by_stage[code][2])
            for code in STAGE_CODES if code in by_stage]


def deals_behind(session: Session, today: date, curators: Collection[int] | None = None,
                 limit: int | None = None) -> list[DealBehind]:
    """Deals in progress past their current stage's planned end, the worst first."""
    days_behind = dates_apart(_day(today), DealStagePlan.planned_end).label("days_behind")
    query = (select(Deal.id, Deal.number, Deal.title, Deal.kind, Customer.name, User.display_name,
                    Deal.current_stage, DealStagePlan.planned_end, days_behind)
             .join(DealStagePlan, and_(DealStagePlan.deal_id == Deal.id, DealStagePlan.stage == Deal.current_stage))
             .join(Customer, Customer.id == Deal.customer_id)
             .join(User, User.id == Deal.curator_id)
             .where(_deals_in_progress(curators), DealStagePlan.planned_end < today)
             .order_by(DealStagePlan.planned_end, Deal.id)
             .limit(limit))
    return [DealBehind(*row) for row in session.execute(query)]


def _open_claims(officers: Collection[str] | None, untriaged: bool) -> ColumnElement[bool]:
    """Claims not closed; with ``officers``, those of these responsible officers, and with
    ``untriaged`` also those that have no officer yet (the triage queue)."""
    condition = Claim.status != ClaimStatus.CLOSED.value
    if officers is None:
        return condition
    mine = Claim.responsible_officer.in_(list(officers))
    return and_(condition, or_(mine, Claim.responsible_officer.is_(None)) if untriaged else mine)


def oldest_open_claim_deadline(session: Session) -> datetime | None:
    """The earliest response deadline of an open claim: how far back lateness is counted."""
    return session.scalar(select(func.min(Claim.response_due_at)).where(Claim.status != ClaimStatus.CLOSED.value))


def claims_behind_by_status(session: Session, now: datetime, working_days: WorkingDays,
                            officers: Collection[str] | None = None, untriaged: bool = True) -> list[StageBehind]:
    """Per state of the investigation: open claims, how many are past their response
    deadline, and by how many working days."""
    late = Claim.response_due_at < now
    lateness = working_days.between(Claim.response_due_at, _moment(now))
    samples = (select(Claim.status.label("key"), lateness.label("value"))
               .where(_open_claims(officers, untriaged), late).subquery())
    figures = {key: values for key, values in _percentiles(session, samples, (MEDIAN,)).items()}
    worst = dict(session.execute(select(samples.c.key, func.max(samples.c.value)).group_by(samples.c.key)).all())
    rows = session.execute(select(Claim.status, func.count(), _count_if(late))
                           .where(_open_claims(officers, untriaged)).group_by(Claim.status)).all()
    by_status = {status: (total, behind) for status, total, behind in rows}
    order = [status.value for status in ClaimStatus if status != ClaimStatus.CLOSED]
    return [StageBehind(status, by_status[status][0], by_status[status][1], figures.get(status, [None])[0],
                        worst.get(status))
            for status in order if status in by_status]


def claims_behind(session: Session, now: datetime, working_days: WorkingDays,
                  officers: Collection[str] | None = None, untriaged: bool = True,
                  limit: int | None = None) -> list[ClaimBehind]:
    """Open claims past their response deadline, the longest overdue first."""
    query = (select(Claim.id, Claim.number, Customer.name, Claim.reason, Claim.status, Claim.responsible_officer,
                    Claim.response_due_at, working_days.between(Claim.response_due_at, _moment(now)))
             .join(Customer, Customer.id == Claim.customer_id)
             .where(_open_claims(officers, untriaged), Claim.response_due_at < now)
             .order_by(Claim.response_due_at, Claim.id)
             .limit(limit))
    return [ClaimBehind(*row) for row in session.execute(query)]


# -- claims (C6) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimsMonth:
    month: date  # the month's first day (of the period, for a month cut by it)
    registered: int
    resolved: int
    open_at_end: int  # registered by the end of the month and not closed by then


@dataclass(frozen=True)
class ClaimsGroup:
    """Claims registered in the period, of one guilty department or one reason (or all)."""

    key: str | None
    registered: int
    resolved: int
    open: int
    satisfied: int
    partly_satisfied: int
    rejected: int
    on_time: int  # resolved by the response deadline
    median_working_days: float | None  # registration to resolution
    p90_working_days: float | None
    median_allowed_working_days: float | None  # registration to the response deadline

    def resolution_share(self, resolution: str) -> float | None:
        return _share(getattr(self, resolution), self.resolved)

    @property
    def on_time_share(self) -> float | None:
        return _share(self.on_time, self.resolved)


@dataclass(frozen=True)
class ClaimsAnalytics:
    months: list[ClaimsMonth]
    total: ClaimsGroup
    departments: list[ClaimsGroup]
    reasons: list[ClaimsGroup]
    structure: dict[tuple[str | None, str], int]  # (guilty department, reason) -> claims


def claims_analytics(session: Session, period: Period, zone: ZoneInfo, working_days: WorkingDays, *,
                     department: str | None = None) -> ClaimsAnalytics:
    """C6 for the claims registered in the period (months in ``zone``); ``department``
    keeps the claims blamed on that department."""
    window = period.window(zone)
    scope = Claim.guilty_department == department if department is not None else None
    cohort = and_(_within(Claim.registered_at, window), *([scope] if scope is not None else []))
    groups = _claims_groups(session, cohort, working_days)
    structure = {(dept, reason): claims for dept, reason, claims in session.execute(
        select(Claim.guilty_department, Claim.reason, func.count()).where(cohort)
        .group_by(Claim.guilty_department, Claim.reason))}

    def of(grouping: str) -> list[ClaimsGroup]:
        return sorted((group for (kind, _key), group in groups.items() if kind == grouping),
                      key=lambda group: (-group.registered, group.key or ""))

    return ClaimsAnalytics(months=_claims_by_month(session, period.months(), zone, scope),
                           total=groups[TOTAL, None], departments=of(DEPARTMENT), reasons=of(REASON),
                           structure=structure)


def _claims_by_month(session: Session, periods: Sequence[Period], zone: ZoneInfo,
                     scope: ColumnElement[bool] | None) -> list[ClaimsMonth]:
    """Registered, resolved and closed claims counted into month buckets (a CASE over the
    months' UTC boundaries, so local months need no time-zone function in SQL); the
    claims open at each month's end are those open at the start plus a running sum."""
    months = [month.window(zone) for month in periods]
    window = Window(months[0].start, months[-1].end)

    def bucket(column) -> ColumnElement[int]:
        return case(*((column < month.end, index) for index, month in enumerate(months)))

    def events(column, registered: int, resolved: int, opened: int) -> Select:
        return (select(bucket(column).label("month"), literal(registered).label("registered"),
                       literal(resolved).label("resolved"), literal(opened).label("opened"))
                .where(_within(column, window), *([scope] if scope is not None else [])))

    happened = union_all(events(Claim.registered_at, 1, 0, 1), events(Claim.resolved_at, 0, 1, 0),
                         events(Claim.closed_at, 0, 0, -1)).subquery()
    per_month = (select(happened.c.month, func.sum(happened.c.registered).label("registered"),
                        func.sum(happened.c.resolved).label("resolved"), func.sum(happened.c.opened).label("opened"))
                 .group_by(happened.c.month).subquery())
    open_at_start = session.scalar(select(func.count()).select_from(Claim).where(
        Claim.registered_at < window.start, or_(Claim.closed_at.is_(None), Claim.closed_at >= window.start),
        *([scope] if scope is not None else [])))
    rows = {month: (registered, resolved, running) for month, registered, resolved, running in session.execute(
        select(per_month.c.month, per_month.c.registered, per_month.c.resolved,
               func.sum(per_month.c.opened).over(order_by=per_month.c.month)))}
    result, running = [], 0
    for index, month in enumerate(periods):
        registered, resolved, running = rows.get(index, (0, 0, running))
        result.append(ClaimsMonth(month=month.first, registered=int(registered), resolved=int(resolved),
                                  open_at_end=open_at_start + int(running)))
    return result


TOTAL, DEPARTMENT, REASON = "total", "department", "reason"


def _claims_groups(session: Session, cohort: ColumnElement[bool], working_days: WorkingDays
                   ) -> dict[tuple[str, str | None], ClaimsGroup]:
    """The cohort's figures in total, per guilty department and per reason, keyed by
    (grouping, department or reason). Counts in one query; the working days each claim
    took and was allowed are counted once (a materialized CTE) for the percentiles of all
    three groupings, in another."""
    resolved = Claim.resolved_at.is_not(None)
    figures = (func.count(), _count_if(resolved), _count_if(Claim.status != ClaimStatus.CLOSED.value),
               *(_count_if(Claim.resolution == resolution) for resolution in RESOLUTIONS),
               _count_if(and_(resolved, Claim.resolved_at <= Claim.response_due_at)))
    no_key = literal(None, String())
    counts = session.execute(union_all(
        select(literal(TOTAL), no_key, *figures).where(cohort),
        select(literal(DEPARTMENT), Claim.guilty_department, *figures).where(cohort).group_by(Claim.guilty_department),
        select(literal(REASON), Claim.reason, *figures).where(cohort).group_by(Claim.reason))).all()

    claims, (registered, resolved_on, due) = working_days.numbered(
        session, select(Claim.guilty_department.label(DEPARTMENT), Claim.reason.label(REASON)).where(cohort),
        Claim.registered_at, Claim.resolved_at, Claim.response_due_at)
    per_claim = (claims.add_columns((resolved_on - registered).label("took"), (due - registered).label("allowed"))
                 .cte("per_claim").prefix_with("MATERIALIZED"))

    def days_of(grouping: str, key: ColumnElement) -> Select:
        query = select(literal(grouping), key, _percentiles_of(session, per_claim.c.took, (MEDIAN, P90)),
                       _percentiles_of(session, per_claim.c.allowed, (MEDIAN,)))
        return query.group_by(key) if grouping != TOTAL else query

    days = {(grouping, key): (*_percentile_values(took, (MEDIAN, P90)), *_percentile_values(allowed, (MEDIAN,)))
            for grouping, key, took, allowed in session.execute(union_all(
                days_of(TOTAL, no_key), days_of(DEPARTMENT, per_claim.c[DEPARTMENT]),
                days_of(REASON, per_claim.c[REASON])))}
    return {(grouping, key): ClaimsGroup(key, *values, *days.get((grouping, key), (None, None, None)))
            for grouping, key, *values in counts}


# -- comparison of managers (M2) ----------------------------------------------------------


@dataclass(frozen=True)
class ManagerFigures:
    deals_started: int = 0
    won: int = 0
    lost: int = 0
    revenue: Decimal = Decimal("0.00")
    items_due: int = 0  # work items due in the period
    items_late: int = 0  # of those, done after the deadline or still open past it
    working_days_late: int = 0  # summed over the late items
    escalations: int = 0  # breach and head-of-department rungs fired about items they held
    claims_caused: int = 0  # claims registered naming them as the guilty employee

    @property
    def conversion(self) -> float | None:
        return _share(self.won, self.won + self.lost)

    @property
    def overdue_rate(self) -> float | None:
        return _share(self.items_late, self.items_due)

    @property
    def avg_working_days_late(self) -> float | None:
        return _share(self.working_days_late, self.items_late)

    def indicator(self, name: str) -> float | int | Decimal | None:
        return getattr(self, name)

    @property
    def is_empty(self) -> bool:
        return self == ManagerFigures()


INDICATORS = ("deals_started", "won", "lost", "conversion", "revenue", "overdue_rate", "avg_working_days_late",
              "escalations", "claims_caused")


@dataclass(frozen=True)
class ManagerRow:
    user_id: int
    username: str
    display_name: str
    periods: list[ManagerFigures] = field(default_factory=list)  # one per window asked for

    def change(self, indicator: str, against: int) -> float | int | Decimal | None:
        """The first period's figure minus that of period ``against`` (None when either has none)."""
        current, other = self.periods[0].indicator(indicator), self.periods[against].indicator(indicator)
        return None if current is None or other is None else current - other


def compare_managers(session: Session, windows: Sequence[Window], people: Collection[int] | None, now: datetime,
                     working_days: WorkingDays) -> list[ManagerRow]:
    """M2: the figures of each of ``people`` (everyone: None) in each window (typically the
    period, the one before and the same one a year earlier); only people with a figure in
    some window."""
    per_window = _manager_figures(session, windows, None if people is None else list(people), now, working_days)
    listed = set().union(*per_window)
    if not listed:
        return []
    users = session.execute(select(User.id, User.username, User.display_name)
                            .where(User.id.in_(listed)).order_by(User.display_name, User.id)).all()
    return [ManagerRow(user_id, username, name, [ManagerFigures(**figures.get(user_id, {})) for figures in per_window])
            for user_id, username, name in users]


def _manager_figures(session: Session, windows: Sequence[Window], people: list[int] | None, now: datetime,
                     working_days: WorkingDays) -> list[dict[int, dict[str, Any]]]:
    """The figures of each window, per person: one query per table for all the windows."""
    figures: list[dict[int, dict[str, Any]]] = [defaultdict(dict) for _ in windows]

    def among(column) -> ColumnElement[bool]:
        return column.in_(people) if people is not None else column.is_not(None)

    # The windows' few deals first (materialized, read once for all the windows): grouping
    # them beats SQLite's other plan, walking every deal through the curator index in curator order.
    deals = (select(Deal.curator_id, Deal.status, Deal.amount, Deal.created_at, Deal.closed_at)
             .where(among(Deal.curator_id), or_(*(or_(_within(Deal.created_at, window),
                                                       _within(Deal.closed_at, window)) for window in windows)))
             .cte("window_deals").prefix_with("MATERIALIZED"))

    def deals_of(window: Window) -> Select:
        won = and_(deals.c.status == DealStatus.WON.value, _within(deals.c.closed_at, window))
        lost = and_(deals.c.status == DealStatus.LOST.value, _within(deals.c.closed_at, window))
        return (select(deals.c.curator_id, _count_if(_within(deals.c.created_at, window)), _count_if(won),
                       _count_if(lost), func.sum(case((won, deals.c.amount))))
                .where(or_(_within(deals.c.created_at, window), _within(deals.c.closed_at, window)))
                .group_by(deals.c.curator_id))

    for window, user_id, started, won_deals, lost_deals, revenue in session.execute(
            union_all(*_per_window(windows, deals_of))):
        figures[window][user_id].update(deals_started=started, won=won_deals, lost=lost_deals,
                                        revenue=Decimal(str(revenue or 0)).quantize(Decimal("0.01")))

    late = or_(WorkItem.completed_at > WorkItem.due_at, and_(WorkItem.completed_at.is_(None), WorkItem.due_at < now))
    # Cancelled steps were never anyone's to finish; the IN keeps the indexes on (assignee,
    # status, due, ...) and (status, due, ...) usable for the window's range.
    counted = WorkItem.status.in_([ItemStatus.OPEN.value, ItemStatus.COMPLETED.value])

    def items_of(window: Window) -> Select:
        items, (due, done) = working_days.numbered(
            session, select(WorkItem.assignee_id).where(among(WorkItem.assignee_id), counted,
                                                        _within(WorkItem.due_at, window)),
            WorkItem.due_at, func.coalesce(WorkItem.completed_at, _moment(now)), where=late)
        return (items.add_columns(func.count(), _count_if(late), func.coalesce(func.sum(done - due), 0))
                .group_by(WorkItem.assignee_id))

    for window, user_id, due, late_items, days_late in session.execute(union_all(*_per_window(windows, items_of))):
        figures[window][user_id].update(items_due=due, items_late=late_items, working_days_late=int(days_late))

    # A rung counts in the window it fell due in (it fires within the scheduler's minute),
    # for whom it was about when it fired: all of it in the escalations' index on (status,
    # due, level, assignee).
    def escalations_of(window: Window) -> Select:
        return (select(Escalation.assignee_id, func.count())
                .where(Escalation.status == EscalationStatus.DONE.value, _within(Escalation.due_at, window),
                       Escalation.level.in_([BREACH, HEAD]), among(Escalation.assignee_id))
                .group_by(Escalation.assignee_id))

    for window, user_id, escalations in session.execute(union_all(*_per_window(windows, escalations_of))):
        figures[window][user_id]["escalations"] = int(escalations)

    def claims_of(window: Window) -> Select:
        return (select(Claim.guilty_employee_id, func.count())
                .where(among(Claim.guilty_employee_id), _within(Claim.registered_at, window))
                .group_by(Claim.guilty_employee_id))

    for window, user_id, claims in session.execute(union_all(*_per_window(windows, claims_of))):
        figures[window][user_id]["claims_caused"] = claims
    return figures


def _per_window(windows: Sequence[Window], query: Callable[[Window], Select]) -> list[Select]:
    """``query`` of each window, its rows led by the window's index. A UNION ALL of them
    is one round trip for all the windows whose parts are each planned as alone (reading
    just their window's range by index), and overlapping windows (a year's previous
    period is the year before) each get all their rows."""
    parts = [query(window) for window in windows]
    return [part.with_only_columns(literal(index).label("window"), *part.selected_columns)
            for index, part in enumerate(parts)]


# -- the overdue heatmap ------------------------------------------------------------------

SEVERITY_THRESHOLDS = ((0.5, "high"), (0.25, "medium"), (0.0, "low"))  # share of open items overdue


@dataclass(frozen=True)
class TaskHeat:
    task_spec: str  # the BPMN element id
    name: str
    open_items: int
    overdue: int
    median_age_days: float | None
    max_days_overdue: float | None

    @property
    def overdue_share(self) -> float | None:
        return _share(self.overdue, self.open_items)

    @property
    def severity(self) -> str:
        """none (nothing overdue), low, medium or high by the share of open items overdue."""
        if not self.overdue:
            return "none"
        share = self.overdue_share or 0.0
        return next(level for threshold, level in SEVERITY_THRESHOLDS if share >= threshold)


@dataclass(frozen=True)
class HeatItem:
    id: int
    instance_id: int
    business_key: str | None
    name: str
    assignee: str | None
    created_at: datetime
    due_at: datetime | None


def _open_items_of(process_key: str, scope: WorkItemQuery | None) -> ColumnElement[bool]:
    """The scope's items (by default every open item) of the process's instances (joined)."""
    return and_((scope or WorkItemQuery()).condition(), ProcessInstance.process_key == process_key)


def overdue_heatmap(session: Session, process_key: str, now: datetime,
                    scope: WorkItemQuery | None = None) -> list[TaskHeat]:
    """Per task of the process (every version), the work items of ``scope`` (by default
    every open item): how many, how many overdue, their median age and the longest overdue."""
    condition = _open_items_of(process_key, scope)
    overdue = WorkItem.due_at < now
    ages = (select(WorkItem.task_spec.label("key"), days_between(_moment(now), WorkItem.created_at).label("value"))
            .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id).where(condition).subquery())
    median_age = _percentiles(session, ages, (MEDIAN,))
    rows = session.execute(
        select(WorkItem.task_spec, func.max(WorkItem.name), func.count(), _count_if(overdue),
               func.max(case((overdue, days_between(_moment(now), WorkItem.due_at)))))
        .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id)
        .where(condition).group_by(WorkItem.task_spec)).all()
    heat = [TaskHeat(task, name, total, late, median_age.get(task, [None])[0], worst)
            for task, name, total, late, worst in rows]
    return sorted(heat, key=lambda task: (-(task.overdue_share or 0), -task.open_items, task.task_spec))


def heatmap_items(session: Session, process_key: str, task_spec: str, scope: WorkItemQuery | None = None,
                  limit: int | None = None) -> tuple[int, list[HeatItem]]:
    """The items of one task within ``scope`` (by default every open item), in the work
    items' order (the earliest deadline first), and how many there are."""
    condition = and_(_open_items_of(process_key, scope), WorkItem.task_spec == task_spec)
    total = session.scalar(select(func.count()).select_from(WorkItem)
                           .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id).where(condition))
    rows = session.execute(
        select(WorkItem.id, WorkItem.instance_id, ProcessInstance.business_key, WorkItem.name, User.display_name,
               WorkItem.created_at, WorkItem.due_at)
        .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id)
        .outerjoin(User, User.id == WorkItem.assignee_id)
        .where(condition)
        .order_by(*WORK_ITEM_ORDER)
        .limit(limit))
    return total, [HeatItem(*row) for row in rows]
