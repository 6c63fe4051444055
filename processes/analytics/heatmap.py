"""The overdue heatmap of a process diagram: open work per task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from engine.models import ProcessInstance, User, WorkItem
from engine.runtime.queries import ORDER as WORK_ITEM_ORDER
from engine.runtime.queries import WorkItemQuery
from processes.analytics.sql import MEDIAN, bound_moment, count_if, days_between, percentiles, share

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
        return share(self.overdue, self.open_items)

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
    ages = (select(WorkItem.task_spec.label("key"), days_between(bound_moment(now), WorkItem.created_at).label("value"))
            .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id).where(condition).subquery())
    median_age = percentiles(session, ages, (MEDIAN,))
    rows = session.execute(
        select(WorkItem.task_spec, func.max(WorkItem.name), func.count(), count_if(overdue),
               func.max(case((overdue, days_between(bound_moment(now), WorkItem.due_at)))))
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
