"""Does the escalation sweep cost follow the breaches, not the open items?

Seeds N open work items, each with a pending breach rung in the future (its ladder not yet
due), plus 1,000 items whose breach is due now, then times ``EscalationService.sweep``
firing those 1,000 (each notifying the assignee and their manager, in-app and by e-mail
through the outbox). Between samples the fired rungs are put back to pending and what
they wrote is removed, outside the timing. Printed: the median sweep for N = 10,000 and
N = 1,000,000 and their ratio (target <= 1.3).

    python bench/escalation_sweep.py [--samples 5] [--large 1000000]     (SQLite, WAL)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, insert, select, update

from engine.deadlines.escalation import BREACH, ESCALATED
from engine.models import (
    Escalation,
    HistoryEvent,
    Notification,
    OutboxMessage,
    ProcessDefinition,
    ProcessInstance,
    User,
    WorkItem,
)
from engine.runtime import Engine
from processes.system import build_system

BREACHES = 1_000
CHUNK = 20_000
SETTINGS = {"channels": ["in_app", "email"], "teams": []}


def seed(engine: Engine, open_items: int, breaches: int) -> None:
    engine.add_user("boss", email="boss@example.test", roles=["employee", "manager"])
    engine.add_user("ann", email="ann@example.test", manager="boss")
    now = datetime.now(timezone.utc)
    with engine.transaction() as session:
        ann = session.scalar(select(User.id).where(User.username == "ann"))
        # One instance holds the items: the sweep never reads instances.
        definition = ProcessDefinition(key="bench", version=1, content_hash="-", sources={}, deployed_at=now)
        instance = ProcessInstance(definition=definition, process_key="bench", status="running", state="{}",
                                   started_at=now, updated_at=now)
        session.add(instance)
        session.flush()
        instance_id = instance.id
    total = open_items + breaches
    for start in range(0, total, CHUNK):
        numbers = range(start, min(start + CHUNK, total))
        with engine.transaction() as session:
            session.execute(insert(WorkItem), [
                {"id": n + 1, "instance_id": instance_id, "task_id": str(uuid.uuid4()), "task_spec": "t",
                 "name": f"Item {n}", "stage": "Stage", "assignee_id": ann, "priority": 50, "status": "open",
                 "version": 1, "created_at": now, "due_at": _due(n, open_items, now)}
                for n in numbers
            ])
            session.execute(insert(Escalation), [
                {"dedupe_key": f"item:{n + 1}:{BREACH}", "instance_id": instance_id, "work_item_id": n + 1,
                 "level": BREACH, "due_at": _due(n, open_items, now), "deadline": _due(n, open_items, now),
                 "status": "pending", "settings": SETTINGS}
                for n in numbers
            ])


def _due(n: int, open_items: int, now: datetime) -> datetime:
    # The first ``open_items`` are due over the coming weeks; the rest breached an hour ago.
    if n < open_items:
        return now + timedelta(hours=1 + n % 2000)
    return now - timedelta(hours=1)


def reset(engine: Engine) -> None:
    with engine.transaction() as session:
        session.execute(delete(OutboxMessage))
        session.execute(delete(Notification))
        session.execute(delete(HistoryEvent).where(HistoryEvent.type == ESCALATED))
        session.execute(update(Escalation).where(Escalation.status == "done")
                        .values(status="pending", fired_at=None, fired_by=None, outcome=None))


def measure(open_items: int, samples: int) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        system = build_system(f"sqlite:///{folder}/bench.db", webhooks=None)
        system.init_db()
        engine = system.engine
        started = time.perf_counter()
        seed(engine, open_items, BREACHES)
        print(f"  seeded {open_items:,} open items + {BREACHES:,} breaches in {time.perf_counter() - started:.0f} s",
              flush=True)
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            result = system.escalation.sweep()
            timings.append(time.perf_counter() - started)
            assert result.fired == BREACHES, result
            with engine.reading() as session:
                assert session.scalar(select(func.count()).select_from(Notification)) == 2 * BREACHES
            reset(engine)
        engine.dispose()
        return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--large", type=int, default=1_000_000, help="open items of the large case")
    args = parser.parse_args()
    medians = {}
    for open_items in (10_000, args.large):
        print(f"{open_items:,} open items:", flush=True)
        timings = measure(open_items, args.samples)
        medians[open_items] = statistics.median(timings)
        print(f"  sweep of {BREACHES:,} breaches: median {medians[open_items] * 1000:.0f} ms "
              f"(min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f}, {args.samples} samples)", flush=True)
    ratio = medians[args.large] / medians[10_000]
    print(f"ratio {args.large:,} / 10,000 open items: {ratio:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
