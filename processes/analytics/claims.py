"""Claims (C6): the claims registered in a period, by month, guilty department and reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import String, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from processes.analytics.periods import Period, Window
from processes.analytics.sql import MEDIAN, P90, count_if, percentile_values, percentiles_of, share, within
from processes.analytics.working_days import WorkingDays
from processes.models import Claim, ClaimStatus

RESOLUTIONS = ("satisfied", "partly_satisfied", "rejected")


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
        return share(getattr(self, resolution), self.resolved)

    @property
    def on_time_share(self) -> float | None:
        return share(self.on_time, self.resolved)


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
    cohort = and_(within(Claim.registered_at, window), *([scope] if scope is not None else []))
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
                .where(within(column, window), *([scope] if scope is not None else [])))

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
    figures = (func.count(), count_if(resolved), count_if(Claim.status != ClaimStatus.CLOSED),
               *(count_if(Claim.resolution == resolution) for resolution in RESOLUTIONS),
               count_if(and_(resolved, Claim.resolved_at <= Claim.response_due_at)))
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
        query = select(literal(grouping), key, percentiles_of(session, per_claim.c.took, (MEDIAN, P90)),
                       percentiles_of(session, per_claim.c.allowed, (MEDIAN,)))
        return query.group_by(key) if grouping != TOTAL else query

    days = {(grouping, key): (*percentile_values(took, (MEDIAN, P90)), *percentile_values(allowed, (MEDIAN,)))
            for grouping, key, took, allowed in session.execute(union_all(
                days_of(TOTAL, no_key), days_of(DEPARTMENT, per_claim.c[DEPARTMENT]),
                days_of(REASON, per_claim.c[REASON])))}
    return {(grouping, key): ClaimsGroup(key, *values, *days.get((grouping, key), (None, None, None)))
            for grouping, key, *values in counts}
