"""The history a transaction records: what happened to which instance, who did it, when.

Whatever records history (a step, a claim, a reassignment, an escalation rung, a CRM
hand-over) calls ``record``; the events wait in the session until the unit of work ends
the transaction (``engine.runtime.unit_of_work``), which writes them in one statement and
hands them to the step listeners. Nothing needs their ids before then.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.models import EventType, HistoryEvent
from engine.runtime import statements as sql

# Where a write session collects the history events of its transaction, in order, and the
# process key of each instance they belong to (for listeners of some processes only).
EVENTS_KEY = "crmflow_events"
KEYS_KEY = "crmflow_process_keys"
_COLUMNS = ("instance_id", "work_item_id", "type", "at", "actor", "task_spec", "detail")


def record(session: Session, kind: EventType | str, at: datetime, actor: str | None, instance_id: int,
           item_id: int | None = None, task_spec: str | None = None, detail: dict[str, Any] | None = None) -> None:
    kind = kind.value if isinstance(kind, EventType) else kind
    record_events(session, [HistoryEvent(instance_id=instance_id, work_item_id=item_id, type=kind, at=at, actor=actor,
                                         task_spec=task_spec, detail=detail)])


def record_events(session: Session, events: list[HistoryEvent]) -> None:
    session.info.setdefault(EVENTS_KEY, []).extend(events)


def recorded_so_far(session: Session) -> int:
    """A mark of the history recorded so far in the transaction (see ``forget_recorded_since``)."""
    return len(session.info.get(EVENTS_KEY, []))


def forget_recorded_since(session: Session, mark: int) -> None:
    """Drop what was recorded after ``mark``: a part of the transaction rolled back to a savepoint."""
    del session.info.setdefault(EVENTS_KEY, [])[mark:]


def note_process(session: Session, instance_id: int, process_key: str) -> None:
    """The process of an instance this transaction stepped (saves the listeners a query)."""
    session.info.setdefault(KEYS_KEY, {})[instance_id] = process_key


def process_key_of(session: Session, instance_id: int) -> str:
    keys = session.info.setdefault(KEYS_KEY, {})
    if instance_id not in keys:  # a claim or a reassignment: no step loaded the instance
        keys[instance_id] = session.scalar(sql.PROCESS_KEY_OF_INSTANCE, {"instance_id": instance_id})
    return keys[instance_id]


def write_recorded(session: Session) -> list[HistoryEvent]:
    """Write the events recorded since the last call, in one statement; returns them."""
    events = session.info.pop(EVENTS_KEY, [])
    if events:
        session.execute(sql.INSERT_HISTORY, [{column: getattr(event, column) for column in _COLUMNS}
                                             for event in events])
    return events
