"""The sales funnel (S5): the deals opened in a period, stage by stage, and why deals were lost."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from processes.analytics.periods import Window
from processes.analytics.sql import MEDIAN, P90, count_if, percentile_values, percentiles_of, share, within
from processes.models import Deal, DealKind, DealMove, DealStatus
from processes.stages import STAGE_CODES, WON

FUNNEL_KINDS = (DealKind.TYPICAL, DealKind.MANUAL)  # the kinds with stages


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
        return share(self.converted, self.reached)


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
        return share(self.won, self.won + self.lost)


def _deal_cohort(kinds: Collection[str], window: Window, curators: Collection[int] | None) -> ColumnElement[bool]:
    condition = and_(Deal.kind.in_(list(kinds)), within(Deal.created_at, window))
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
        if status == DealStatus.LOST:
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
            select(DealMove.to_stage, count_if(DealMove.first_entry),
                   percentiles_of(session, DealMove.stay_days, (MEDIAN, P90)))
            .where(_moves_of(kinds, window, curators), DealMove.to_stage.in_(STAGE_CODES))
            .group_by(DealMove.to_stage)):
        entered[stage], times[stage] = first_entries, percentile_values(values, (MEDIAN, P90))

    stages = []
    for index, code in enumerate(STAGE_CODES):
        median, p90 = times.get(code, (None, None))
        stages.append(FunnelStage(
            stage=code, entered=entered.get(code, 0), reached=reached[index], converted=reached[index + 1],
            lost=sum(deals for (stage, _), deals in lost_by_stage.items() if stage == code),
            median_days=median, p90_days=p90,
        ))
    won, won_revenue = outcome.get(DealStatus.WON, (0, 0))
    return Funnel(
        deals=sum(deals for deals, _ in outcome.values()),
        won=won,
        lost=outcome.get(DealStatus.LOST, (0, 0))[0],
        in_progress=outcome.get(DealStatus.IN_PROGRESS, (0, 0))[0],
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
        return and_(DealMove.deal_kind.in_(list(kinds)), within(DealMove.deal_created_at, window))
    return DealMove.deal_id.in_(select(Deal.id).where(_deal_cohort(kinds, window, curators)))
