"""What happens to a work item between its step's start and end: claimed from a queue,
handed to someone else, its priority raised. This module is the one place that changes an
open item outside a step, and so the one place that moves its ``version``, once per
transaction however many changes it makes: a form opened before the change is then stale
(``StaleWorkItem``). Each change is recorded in the instance's history, which the unit of
work hands to the step listeners.

These run inside the caller's transaction: ``Engine.claim`` and ``Engine.reassign`` check
who may do it and call them; the escalation ladder and the CRM's hand-over, which check
their own rules, call them through ``Engine.reassign_in`` and ``Engine.raise_priority_in``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session, selectinload

from engine.errors import InactiveUser, WorkItemClosed, WorkItemNotFound
from engine.models import EventType, ItemStatus, User, WorkItem
from engine.runtime import statements as sql
from engine.runtime.history import record

# The items this transaction changed: their version moves once.
CHANGED_KEY = "crmflow_changed_items"


def lock_item(session: Session, item_id: int) -> WorkItem:
    """The item, locked for the rest of the transaction (PostgreSQL ``FOR UPDATE``)."""
    item = session.scalars(sql.ITEM_FOR_UPDATE, {"item_id": item_id}).unique().one_or_none()
    if item is None:
        raise WorkItemNotFound(item_id)
    return item


def get_item(session: Session, item_id: int) -> WorkItem:
    item = session.get(WorkItem, item_id, options=[selectinload(WorkItem.candidates)])
    if item is None:
        raise WorkItemNotFound(item_id)
    return item


def require_open(item: WorkItem) -> None:
    if item.status != ItemStatus.OPEN:
        by = item.completed_by.username if item.completed_by else None
        raise WorkItemClosed(item.id, item.status, by)


def claim_in(session: Session, item: WorkItem, claimer: User, now: datetime) -> None:
    """``claimer`` takes the open, unassigned ``item`` (the caller checked they may)."""
    item.assignee = claimer
    _changed(session, item)
    record(session, EventType.WORK_ITEM_CLAIMED, now, claimer.username, item.instance_id, item.id, item.task_spec)


def reassign_in(session: Session, item: WorkItem, target: User, *, actor: str | None, reason: str | None,
                now: datetime) -> bool:
    """Hand the open ``item`` to ``target``; False (and nothing changes) when it is theirs
    already. ``actor`` is who did it (None: the process itself)."""
    require_open(item)
    if not target.active:
        raise InactiveUser(target.username)
    if item.assignee_id == target.id:
        return False
    previous = item.assignee.username if item.assignee else None
    item.assignee = target
    _changed(session, item)
    record(session, EventType.WORK_ITEM_REASSIGNED, now, actor, item.instance_id, item.id, item.task_spec,
           detail={"from": previous, "to": target.username, "reason": reason})
    return True


def raise_priority_in(session: Session, item: WorkItem, priority: int) -> bool:
    """Raise the open ``item``'s priority to ``priority``; False when it is that high already."""
    require_open(item)
    if item.priority >= priority:
        return False
    item.priority = priority
    _changed(session, item)
    return True


def _changed(session: Session, item: WorkItem) -> None:
    changed = session.info.setdefault(CHANGED_KEY, set())
    if item.id not in changed:
        changed.add(item.id)
        item.version += 1
