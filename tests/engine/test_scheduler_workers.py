"""Real ``crmflow worker`` processes on one database: every breach escalated exactly once,
by several workers at once, and across a ``kill -9`` in the middle of a sweep."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select

from engine.deadlines.escalation import BREACH, ESCALATED
from engine.models import Escalation, HistoryEvent, ItemStatus, Notification, OutboxMessage, User, WorkItem
from engine.outbox.notifications import OutboxSender
from engine.runtime import Engine
from processes.system import build_system
from support import TEST_BPMN
from support.mail import SmtpSink

CRMFLOW = Path(sys.executable).with_name("crmflow")
WORKER_TIME_LIMIT = 240  # seconds; a worker never outlives a test run


def seed_breaches(engine: Engine, count: int) -> None:
    """``count`` open work items of ann, each with a breached deadline and its pending
    breach rung, written in bulk (starting 10,000 instances would test something else)."""
    engine.add_user("boss", email="boss@example.test", roles=["employee", "manager"])
    engine.add_user("ann", email="ann@example.test", manager="boss")
    engine.deploy([TEST_BPMN / "approval.bpmn"])
    instance = engine.start("approval", {"curator": "ann", "amount": 100}, started_by="ann")
    deadline = datetime.now(timezone.utc) - timedelta(hours=1)
    with engine.transaction() as session:
        # The real item's own ladder is not part of the count.
        session.execute(delete(Escalation).where(Escalation.instance_id == instance.id))
        ann = session.scalar(select(User.id).where(User.username == "ann"))
        first = session.scalar(select(func.max(WorkItem.id))) + 1
        session.execute(insert(WorkItem), [
            {"id": first + n, "instance_id": instance.id, "task_id": str(uuid.uuid4()), "task_spec": "request",
             "name": f"Breached item {n}", "stage": "Request", "assignee_id": ann, "priority": 50,
             "status": ItemStatus.OPEN, "version": 1, "created_at": deadline - timedelta(days=1),
             "due_at": deadline}
            for n in range(count)
        ])
        session.execute(insert(Escalation), [
            {"dedupe_key": f"item:{first + n}:{BREACH}", "instance_id": instance.id, "work_item_id": first + n,
             "level": BREACH, "due_at": deadline, "deadline": deadline, "status": "pending",
             "settings": {"channels": ["in_app", "email"], "teams": []}}
            for n in range(count)
        ])


def spawn_worker(database_url: str, smtp_port: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "CRMFLOW_DATABASE_URL": database_url}
    env.pop("CRMFLOW_SMTP_HOST", None)  # without a server, e-mail waits in the outbox: counted, not sent
    if smtp_port is not None:
        env.update(CRMFLOW_SMTP_HOST="127.0.0.1", CRMFLOW_SMTP_PORT=str(smtp_port))
    return subprocess.Popen(
        [str(CRMFLOW), "worker", "--poll", "0.2", "--sweep-interval", "2", "--run-for", str(WORKER_TIME_LIMIT)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def counts(engine: Engine) -> dict[str, int]:
    with engine.reading() as session:
        def count(model, *where):
            return session.scalar(select(func.count()).select_from(model).where(*where))
        return {
            "done": count(Escalation, Escalation.level == BREACH, Escalation.status == "done"),
            "pending": count(Escalation, Escalation.level == BREACH, Escalation.status == "pending"),
            "notifications": count(Notification),
            "emails": count(OutboxMessage),
            "history": count(HistoryEvent, HistoryEvent.type == ESCALATED),
            # The same rung notifying the same user twice would be a double.
            "doubles": session.scalar(select(func.count()).select_from(
                select(Notification.escalation_id, Notification.user_id)
                .group_by(Notification.escalation_id, Notification.user_id)
                .having(func.count() > 1).subquery())),
        }


def assert_consistent(state: dict[str, int], total: int) -> None:
    """Every rung either fired completely (two notices, two e-mails, one history event) or not at all."""
    assert state["done"] + state["pending"] == total
    assert state["notifications"] == state["emails"] == 2 * state["done"]
    assert state["history"] == state["done"]
    assert state["doubles"] == 0


def wait_for(condition, timeout: float, workers=()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for worker in workers:
            if worker.poll() is not None:
                pytest.fail(f"a worker exited early ({worker.returncode}):\n{worker.stdout.read()}")
        time.sleep(0.2)
    pytest.fail(f"not done within {timeout} s")


def stop(workers) -> list[str]:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    outputs = []
    for worker in workers:
        try:
            outputs.append(worker.communicate(timeout=60)[0])
        except subprocess.TimeoutExpired:
            worker.kill()
            outputs.append(worker.communicate()[0])
            pytest.fail("a worker did not stop within 60 s of SIGTERM")
    return outputs


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_three_workers_escalate_ten_thousand_breaches_each_exactly_once(database_url):
    total = 10_000
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    seed_breaches(engine, total)
    workers = [spawn_worker(database_url) for _ in range(3)]
    try:
        wait_for(lambda: counts(engine)["pending"] == 0, timeout=200, workers=workers)
    finally:
        outputs = stop(workers)
    assert all(worker.returncode == 0 for worker in workers), outputs
    assert all("stopped." in output for output in outputs)
    state = counts(engine)
    assert_consistent(state, total)
    assert state["done"] == total
    with engine.reading() as session:
        shares = dict(session.execute(select(Escalation.fired_by, func.count()).group_by(Escalation.fired_by)).all())
    assert len(shares) >= 2, f"the work was not shared: {shares}"
    engine.dispose()


@pytest.mark.slow
def test_kill_9_during_a_sweep_loses_and_doubles_nothing(database_url):
    total = 3_000
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    seed_breaches(engine, total)
    victim = spawn_worker(database_url)
    try:
        wait_for(lambda: counts(engine)["done"] >= 300, timeout=60, workers=[victim])
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    after_kill = counts(engine)
    assert 0 < after_kill["pending"], "the worker finished before it could be killed mid-sweep"
    assert_consistent(after_kill, total)

    survivor = spawn_worker(database_url)
    try:
        wait_for(lambda: counts(engine)["pending"] == 0, timeout=120, workers=[survivor])
    finally:
        stop([survivor])
    final = counts(engine)
    assert_consistent(final, total)
    assert final["done"] == total
    engine.dispose()


def test_a_worker_sends_the_escalation_mail_once(database_url):
    total = 25
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    seed_breaches(engine, total)
    smtp = SmtpSink().start()
    worker = spawn_worker(database_url, smtp_port=smtp.port)
    try:
        wait_for(lambda: len(smtp.received()) >= 2 * total, timeout=60, workers=[worker])
    finally:
        stop([worker])  # the worker finishes the sends it is in
    try:
        # Nothing is left to send: a sender after the worker sends no message a second time.
        assert OutboxSender(engine, smtp.settings).send_due() == {"sent": 0, "retried": 0, "failed": 0,
                                                                  "uncertain": 0}
        received = smtp.received()
    finally:
        smtp.stop()
    # Each item's breach notice, to ann and to boss, exactly once.
    assert len(set(received)) == len(received) == 2 * total
    assert {recipient for recipient, _ in received} == {"ann@example.test", "boss@example.test"}
    with engine.reading() as session:
        assert set(session.scalars(select(OutboxMessage.status))) == {"sent"}
        assert set(session.scalars(select(OutboxMessage.attempts))) == {1}
    engine.dispose()
