"""The scheduler: fires BPMN timers and escalations on time, and sends the outbox.

APScheduler runs the jobs in a background thread pool, either embedded in the web
server (``start_embedded``, what ``crmflow serve`` calls) or alone in ``crmflow worker``
(``run_worker``) for several processes or machines. Any number of schedulers may run
against one database: every job claims its rows atomically (see engine/deadlines/escalation.py,
engine/outbox/notifications.py, and ``Engine.wake``, which locks the instance), so each timer,
rung and message is handled once.

Jobs:

- ``tick`` (every ``poll`` seconds, default 1 s): reads the timers due before the next
  tick and the next escalation moment from their indexes; schedules an exact APScheduler
  date trigger for each timer (so it fires within milliseconds of its moment rather than
  up to a poll late) and starts the sweep job when a rung is due.
- ``escalations`` (every ``sweep_interval``, and once at start): the safety sweep; on
  start it escalates, once and in order, whatever fell due while no scheduler ran.
- ``outbox`` (every ``outbox_interval``): sends due e-mail, with retries and back-off.
- ``messages`` (every ``outbox_interval``): the sweep of messages between instances
  (``Engine.deliver_messages``): kept messages past their time expire, those a waiting
  instance missed are delivered.
- ``webhooks`` (every ``outbox_interval``, when CRMFLOW_WEBHOOK_URLS is set): posts due
  webhook events the same way (engine/outbox/webhooks.py).
- ``heartbeat`` (every 10 s): tells other processes this scheduler is alive (engine/scheduling/heartbeat.py).

What is due is decided by the engine's clock (``engine.clock``), as every step is: a
scheduler on a fake clock fires timers and escalations as of that clock. APScheduler runs
the jobs on the wall clock, so an exact wake-up is planned as a delay: the timer's moment
less the engine's now.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from datetime import datetime, timedelta, timezone

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from engine.deadlines.escalation import EscalationService
from engine.errors import CrmflowError
from engine.models import InstanceStatus, ProcessInstance
from engine.outbox.notifications import OutboxSender, SmtpSettings
from engine.outbox.webhooks import WebhookSender, WebhookSettings
from engine.scheduling import heartbeat

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, engine, escalation: EscalationService, *, smtp: SmtpSettings | None = None,
                 webhooks: WebhookSettings | None = None, poll: float = 1.0, sweep_interval: float = 30.0,
                 outbox_interval: float = 5.0, worker: str | None = None, threads: int = 4):
        if poll <= 0 or sweep_interval <= 0 or outbox_interval <= 0:
            raise ValueError("scheduler intervals must be positive numbers of seconds")
        self.engine = engine
        self.escalation = escalation
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        escalation.worker = self.worker
        self.sender = OutboxSender(engine, smtp, worker=self.worker) if smtp is not None else None
        self.webhooks = WebhookSender(engine, webhooks, worker=self.worker) if webhooks is not None else None
        self.started_at = engine.clock()
        self.poll = poll
        self.sweep_interval = sweep_interval
        self.outbox_interval = outbox_interval
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(threads)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
            timezone=timezone.utc,
        )
        self._sweep_lock = threading.Lock()

    def start(self, paused: bool = False) -> Scheduler:
        """Plan the jobs and run them in the background threads. ``paused``: plan them but
        run none, for a caller that runs the jobs itself (the tests, on a fake clock)."""
        now = _wall_clock()  # APScheduler's time: run each job at once
        self.scheduler.add_job(self.tick, "interval", seconds=self.poll, id="tick", next_run_time=now)
        self.scheduler.add_job(self.sweep, "interval", seconds=self.sweep_interval, id="escalations",
                               next_run_time=now)
        if self.sender is not None:
            self.scheduler.add_job(self.send_outbox, "interval", seconds=self.outbox_interval, id="outbox",
                                   next_run_time=now)
        else:
            log.warning("CRMFLOW_SMTP_HOST is not set: e-mail notifications wait in the outbox unsent")
        self.scheduler.add_job(self.deliver_messages, "interval", seconds=self.outbox_interval, id="messages",
                               next_run_time=now)
        if self.webhooks is not None:
            self.scheduler.add_job(self.send_webhooks, "interval", seconds=self.outbox_interval, id="webhooks",
                                   next_run_time=now)
        self.scheduler.add_job(self.beat, "interval", seconds=heartbeat.INTERVAL_SECONDS, id="heartbeat",
                               next_run_time=now)
        self.scheduler.start(paused=paused)
        log.info("Scheduler %s started (poll %.1fs, sweep %.0fs)", self.worker, self.poll, self.sweep_interval)
        return self

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking new work; with ``wait``, let running jobs finish their transaction."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
            heartbeat.forget(self.engine, self.worker)

    # -- jobs --------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.engine.clock()
        horizon = now + timedelta(seconds=self.poll)
        wall_now = _wall_clock()
        for instance_id, moment in self._upcoming_wakeups(horizon):
            # An exact wake-up at the timer's moment (at once if it is past), run by the
            # thread pool: a slow instance does not hold up the others or the next tick.
            self.scheduler.add_job(self.wake, "date", run_date=wall_now + max(moment - now, timedelta(0)),
                                   args=[instance_id], id=f"wake:{instance_id}", replace_existing=True)
        due = self.escalation.next_due()
        if due is not None and due <= now and not self._sweep_lock.locked():
            # In the sweep's own job: a long sweep must not delay the timers.
            self.scheduler.modify_job("escalations", next_run_time=wall_now)

    def wake(self, instance_id: int) -> None:
        """Fire an instance's due timers, if they are still due (another scheduler, or the
        instance's own step, may have moved it on since this wake-up was planned)."""
        with self.engine.reading() as session:
            moment = session.scalar(select(ProcessInstance.next_wakeup_at).where(
                ProcessInstance.id == instance_id, ProcessInstance.status == InstanceStatus.RUNNING))
        if moment is None or moment > self.engine.clock():
            return
        try:
            self.engine.wake(instance_id)
        except CrmflowError:
            # The process itself failed (a script, a condition): nothing was saved; the
            # instance stays due and is retried, and the error is in the log for its owner.
            log.exception("Waking instance %s failed", instance_id, extra={"instance_id": instance_id})

    def sweep(self) -> None:
        # One sweep at a time in this process; other processes share the work by row locks.
        if not self._sweep_lock.acquire(blocking=False):
            return
        try:
            result = self.escalation.sweep(now=self.engine.clock())
            if result.fired or result.skipped:
                log.info("Escalated %s (skipped %s): %s", result.fired, result.skipped, result.by_level)
        finally:
            self._sweep_lock.release()

    def send_outbox(self) -> None:
        counts = self.sender.send_due()
        if any(counts.values()):
            log.info("Outbox: %s", counts)

    def deliver_messages(self) -> None:
        counts = self.engine.deliver_messages(now=self.engine.clock())
        if any(counts.values()):
            log.info("Messages: %s", counts)

    def send_webhooks(self) -> None:
        counts = self.webhooks.send_due()
        if any(counts.values()):
            log.info("Webhooks: %s", counts)

    def beat(self) -> None:
        heartbeat.beat(self.engine, self.worker, self.started_at)

    def _upcoming_wakeups(self, horizon: datetime, limit: int = 1000) -> list[tuple[int, datetime]]:
        with self.engine.reading() as session:
            return list(session.execute(
                select(ProcessInstance.id, ProcessInstance.next_wakeup_at)
                .where(ProcessInstance.status == InstanceStatus.RUNNING,
                       ProcessInstance.next_wakeup_at <= horizon)
                .order_by(ProcessInstance.next_wakeup_at)
                .limit(limit)
            ))


def _wall_clock() -> datetime:
    return datetime.now(timezone.utc)


def start_embedded(engine, escalation: EscalationService, **options) -> Scheduler:
    """Start the scheduler inside a server process (``crmflow serve``); SMTP settings
    come from the environment. Call ``shutdown()`` on the result when the server stops."""
    options.setdefault("smtp", SmtpSettings.from_environment())
    return Scheduler(engine, escalation, **options).start()


def run_worker(engine, escalation: EscalationService, *, run_for: float | None = None, **options) -> None:
    """Run the scheduler alone until SIGTERM/SIGINT (or ``run_for`` seconds), then stop
    after the running jobs finish their transactions."""
    options.setdefault("smtp", SmtpSettings.from_environment())
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    scheduler = Scheduler(engine, escalation, **options).start()
    try:
        stop.wait(run_for)
    finally:
        scheduler.shutdown(wait=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
