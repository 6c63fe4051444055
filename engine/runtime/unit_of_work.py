"""The unit of work: every change to crmflow's database is one transaction of these.

A transaction's history (``engine.runtime.history.record``) is written when its work is
done and handed to the step listeners inside the same transaction, so what the listeners
write (a deal's stage move, an escalation ladder, a webhook event) commits or rolls back
with the step that caused it. History a listener records reaches the listeners in the
next round.

On PostgreSQL a step locks its instance row, then its work item row (``FOR UPDATE``); on
SQLite write transactions begin IMMEDIATE. Locks are always taken instance first, then
work item, so two steps never wait on each other in a circle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine as DatabaseEngine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from engine.db import session_factories
from engine.errors import ProcessFailed
from engine.models import HistoryEvent
from engine.runtime.history import process_key_of, write_recorded
from engine.texts import _

T = TypeVar("T")
StepListener = Callable[[Session, list[HistoryEvent]], None]

# SQLite reports a busy database and PostgreSQL a deadlock as OperationalError; an instance
# whose version counter moved under us (its UPDATE matched no row) as StaleDataError.
RETRYABLE = (StaleDataError, OperationalError)
MAX_ATTEMPTS = 5
# Listeners that record history hand it to the listeners again; a loop between them is a bug.
MAX_LISTENER_ROUNDS = 5


class UnitOfWork:
    def __init__(self, db: DatabaseEngine):
        self._read, self._write = session_factories(db)
        self._listeners: list[tuple[StepListener, frozenset[str] | None]] = []

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._write.begin() as session:
            yield session
            self._finish(session)

    def atomically(self, work: Callable[[Session], T]) -> T:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                with self.transaction() as session:
                    return work(session)
            except RETRYABLE:
                if attempt == MAX_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def add_listener(self, listener: StepListener, process_keys: Iterable[str] | None = None) -> None:
        self._listeners.append((listener, frozenset(process_keys) if process_keys is not None else None))

    def _finish(self, session: Session) -> None:
        """Write the transaction's history and tell the listeners, round by round: what a
        listener records (a reassignment, say) reaches the listeners in the next round."""
        for _round in range(MAX_LISTENER_ROUNDS):
            events = write_recorded(session)
            if not events:
                return
            self._notify(session, events)
        raise ProcessFailed(_("The step listeners kept recording history for %(rounds)s rounds: one of them "
                              "reacts to its own events.", rounds=MAX_LISTENER_ROUNDS), code="listeners_loop")

    def _notify(self, session: Session, events: list[HistoryEvent]) -> None:
        for listener, process_keys in self._listeners:
            if process_keys is None:
                listener(session, events)
                continue
            mine = [event for event in events if process_key_of(session, event.instance_id) in process_keys]
            if mine:
                listener(session, mine)
