"""Plan against fact (D4, M1): deals behind their stage plan and claims past their response deadline."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from engine.models import User
from processes.analytics.sql import MEDIAN, bound_day, bound_moment, count_if, dates_apart, percentiles
from processes.analytics.working_days import WorkingDays
from processes.models import Claim, ClaimStatus, Customer, Deal, DealStagePlan, DealStatus
from processes.stages import STAGE_CODES


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
    condition = and_(Deal.status == DealStatus.IN_PROGRESS, Deal.current_stage.is_not(None))
    if curators is not None:
        condition = and_(condition, Deal.curator_id.in_(list(curators)))
    return condition


def deals_behind_by_stage(session: Session, today: date, curators: Collection[int] | None = None
                          ) -> list[StageBehind]:
    """Per stage: deals in progress there, how many are past the stage's planned end, and by
    how many days (today minus the planned end)."""
    days_behind = dates_apart(bound_day(today), DealStagePlan.planned_end)
    behind = DealStagePlan.planned_end < today
    samples = (select(Deal.current_stage.label("key"), days_behind.label("value"))
               .join(DealStagePlan, and_(DealStagePlan.deal_id == Deal.id, DealStagePlan.stage == Deal.current_stage))
               .where(_deals_in_progress(curators), behind).subquery())
    medians = percentiles(session, samples, (MEDIAN,))
    rows = session.execute(
        select(Deal.current_stage, func.count(), count_if(behind), func.max(case((behind, days_behind))))
        .outerjoin(DealStagePlan, and_(DealStagePlan.deal_id == Deal.id, DealStagePlan.stage == Deal.current_stage))
        .where(_deals_in_progress(curators))
        .group_by(Deal.current_stage)).all()
    by_stage = {stage: (total, late, worst) for stage, total, late, worst in rows}
    return [StageBehind(code, by_stage[code][0], by_stage[code][1], medians.get(code, [None])[0], by_stage[code][2])
            for code in STAGE_CODES if code in by_stage]


def deals_behind(session: Session, today: date, curators: Collection[int] | None = None,
                 limit: int | None = None) -> list[DealBehind]:
    """Deals in progress past their current stage's planned end, the worst first."""
    days_behind = dates_apart(bound_day(today), DealStagePlan.planned_end).label("days_behind")
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
    condition = Claim.status != ClaimStatus.CLOSED
    if officers is None:
        return condition
    mine = Claim.responsible_officer.in_(list(officers))
    return and_(condition, or_(mine, Claim.responsible_officer.is_(None)) if untriaged else mine)


def oldest_open_claim_deadline(session: Session) -> datetime | None:
    """The earliest response deadline of an open claim: how far back lateness is counted."""
    return session.scalar(select(func.min(Claim.response_due_at)).where(Claim.status != ClaimStatus.CLOSED))


def claims_behind_by_status(session: Session, now: datetime, working_days: WorkingDays,
                            officers: Collection[str] | None = None, untriaged: bool = True) -> list[StageBehind]:
    """Per state of the investigation: open claims, how many are past their response
    deadline, and by how many working days."""
    late = Claim.response_due_at < now
    lateness = working_days.between(Claim.response_due_at, bound_moment(now))
    samples = (select(Claim.status.label("key"), lateness.label("value"))
               .where(_open_claims(officers, untriaged), late).subquery())
    figures = {key: values for key, values in percentiles(session, samples, (MEDIAN,)).items()}
    worst = dict(session.execute(select(samples.c.key, func.max(samples.c.value)).group_by(samples.c.key)).all())
    rows = session.execute(select(Claim.status, func.count(), count_if(late))
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
                    Claim.response_due_at, working_days.between(Claim.response_due_at, bound_moment(now)))
             .join(Customer, Customer.id == Claim.customer_id)
             .where(_open_claims(officers, untriaged), Claim.response_due_at < now)
             .order_by(Claim.response_due_at, Claim.id)
             .limit(limit))
    return [ClaimBehind(*row) for row in session.execute(query)]
