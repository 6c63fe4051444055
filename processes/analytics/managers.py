"""The comparison of managers (M2): each one's figures in several periods."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement, Select

from engine.deadlines.escalation import BREACH, HEAD
from engine.models import Escalation, EscalationStatus, ItemStatus, User, WorkItem
from processes.analytics.periods import Window
from processes.analytics.sql import bound_moment, count_if, share, within
from processes.analytics.working_days import WorkingDays
from processes.models import Claim, Deal, DealStatus


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
        return share(self.won, self.won + self.lost)

    @property
    def overdue_rate(self) -> float | None:
        return share(self.items_late, self.items_due)

    @property
    def avg_working_days_late(self) -> float | None:
        return share(self.working_days_late, self.items_late)

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
             .where(among(Deal.curator_id), or_(*(or_(within(Deal.created_at, window),
                                                       within(Deal.closed_at, window)) for window in windows)))
             .cte("window_deals").prefix_with("MATERIALIZED"))

    def deals_of(window: Window) -> Select:
        won = and_(deals.c.status == DealStatus.WON, within(deals.c.closed_at, window))
        lost = and_(deals.c.status == DealStatus.LOST, within(deals.c.closed_at, window))
        return (select(deals.c.curator_id, count_if(within(deals.c.created_at, window)), count_if(won),
                       count_if(lost), func.sum(case((won, deals.c.amount))))
                .where(or_(within(deals.c.created_at, window), within(deals.c.closed_at, window)))
                .group_by(deals.c.curator_id))

    for window, user_id, started, won_deals, lost_deals, revenue in session.execute(
            union_all(*_per_window(windows, deals_of))):
        figures[window][user_id].update(deals_started=started, won=won_deals, lost=lost_deals,
                                        revenue=Decimal(str(revenue or 0)).quantize(Decimal("0.01")))

    late = or_(WorkItem.completed_at > WorkItem.due_at, and_(WorkItem.completed_at.is_(None), WorkItem.due_at < now))
    # Cancelled steps were never anyone's to finish; the IN keeps the indexes on (assignee,
    # status, due, ...) and (status, due, ...) usable for the window's range.
    counted = WorkItem.status.in_([ItemStatus.OPEN, ItemStatus.COMPLETED])

    def items_of(window: Window) -> Select:
        items, (due, done) = working_days.numbered(
            session, select(WorkItem.assignee_id).where(among(WorkItem.assignee_id), counted,
                                                        within(WorkItem.due_at, window)),
            WorkItem.due_at, func.coalesce(WorkItem.completed_at, bound_moment(now)), where=late)
        return (items.add_columns(func.count(), count_if(late), func.coalesce(func.sum(done - due), 0))
                .group_by(WorkItem.assignee_id))

    for window, user_id, due, late_items, days_late in session.execute(union_all(*_per_window(windows, items_of))):
        figures[window][user_id].update(items_due=due, items_late=late_items, working_days_late=int(days_late))

    # A rung counts in the window it fell due in (it fires within the scheduler's minute),
    # for whom it was about when it fired: all of it in the escalations' index on (status,
    # due, level, assignee).
    def escalations_of(window: Window) -> Select:
        return (select(Escalation.assignee_id, func.count())
                .where(Escalation.status == EscalationStatus.DONE, within(Escalation.due_at, window),
                       Escalation.level.in_([BREACH, HEAD]), among(Escalation.assignee_id))
                .group_by(Escalation.assignee_id))

    for window, user_id, escalations in session.execute(union_all(*_per_window(windows, escalations_of))):
        figures[window][user_id]["escalations"] = int(escalations)

    def claims_of(window: Window) -> Select:
        return (select(Claim.guilty_employee_id, func.count())
                .where(among(Claim.guilty_employee_id), within(Claim.registered_at, window))
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
