"""Scheduler liveness across processes and machines.

Every running scheduler (``crmflow worker``, or the one ``crmflow serve`` embeds) keeps
a row of ``scheduler_heartbeats`` fresh; any process reads the table to tell whether
timers and escalations are being handled (/healthz, /metrics). A scheduler that stops
cleanly removes its row; one that dies leaves it to go stale, and stale rows are
forgotten after a day so the table does not grow with every restart.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from engine.models import SchedulerHeartbeat

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 10.0
# A scheduler is alive while its last beat is younger than this: three beats missed.
STALE_AFTER = timedelta(seconds=3 * INTERVAL_SECONDS)
FORGET_AFTER = timedelta(days=1)


def beat(engine, worker: str, started_at: datetime) -> None:
    """Record that ``worker`` is alive now."""
    now = engine.clock()
    with engine.transaction() as session:
        refreshed = session.execute(
            update(SchedulerHeartbeat).where(SchedulerHeartbeat.worker == worker).values(beat_at=now)
        ).rowcount
        if not refreshed:  # the worker's name is its own: no one else inserts this row
            session.add(SchedulerHeartbeat(worker=worker, started_at=started_at, beat_at=now))
        session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.beat_at < now - FORGET_AFTER))


def forget(engine, worker: str) -> None:
    """A scheduler stopping cleanly takes its row away. Best effort: a scheduler must stop
    even when the database has gone away, and its row then simply goes stale."""
    try:
        with engine.transaction() as session:
            session.execute(delete(SchedulerHeartbeat).where(SchedulerHeartbeat.worker == worker))
    except SQLAlchemyError as problem:
        log.warning("Could not remove the heartbeat of %s: %s", worker, problem)


def heartbeats(session: Session) -> list[SchedulerHeartbeat]:
    """Every scheduler's last beat, the freshest first."""
    return list(session.scalars(select(SchedulerHeartbeat).order_by(SchedulerHeartbeat.beat_at.desc())))


def is_alive(heartbeat: SchedulerHeartbeat, now: datetime) -> bool:
    return now - heartbeat.beat_at < STALE_AFTER
