"""Operations: ``/healthz`` and ``/metrics`` (Prometheus).

Every web process answers both the same way, whichever of several machines it runs on:
what describes the whole installation (open and overdue work, escalations, the outbox,
timer and escalation lag, the schedulers' heartbeats) is read from the database at each
scrape; what one process measures (engine step and API request latency) is kept by
prometheus_client, across gunicorn's worker processes when PROMETHEUS_MULTIPROC_DIR is
set (``crmflow serve --workers`` sets it; see docs/deploy.md).

CRMFLOW_METRICS_TOKEN  when set, /metrics answers only requests with
                       ``Authorization: Bearer <that value>``
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.deadlines.escalation import LEVELS
from engine.models import (
    Escalation,
    EscalationStatus,
    InstanceStatus,
    ItemStatus,
    OutboxMessage,
    OutboxStatus,
    ProcessInstance,
    WorkItem,
)
from engine.runtime import Engine
from engine.scheduling import heartbeat
from webui.access import engine

bp = Blueprint("ops", __name__)

# What this process measures. In gunicorn's multiprocess mode the values live in files
# under PROMETHEUS_MULTIPROC_DIR and every worker's /metrics adds them all up.
PROCESS_METRICS = CollectorRegistry()
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ENGINE_STEP_SECONDS = Histogram(
    "crmflow_engine_step_seconds", "Time of one engine or CRM facade call made by the web API, by operation.",
    ["operation"], buckets=_LATENCY_BUCKETS, registry=PROCESS_METRICS)
API_REQUEST_SECONDS = Histogram(
    "crmflow_api_request_seconds", "Time to answer one REST API request, by operation and status.",
    ["operation", "method", "status"], buckets=_LATENCY_BUCKETS, registry=PROCESS_METRICS)
_OPEN_OUTBOX_STATES = (OutboxStatus.PENDING.value, OutboxStatus.SENDING.value, OutboxStatus.FAILED.value,
                       OutboxStatus.UNCERTAIN.value)


def init_app(app) -> None:
    app.config.setdefault("CRMFLOW_METRICS_TOKEN", os.environ.get("CRMFLOW_METRICS_TOKEN") or None)


@contextmanager
def engine_step(operation: str) -> Iterator[None]:
    """Time one facade call (``start``, ``complete`` ...) into the step latency histogram."""
    started = time.perf_counter()
    try:
        yield
    finally:
        ENGINE_STEP_SECONDS.labels(operation).observe(time.perf_counter() - started)


def observe_request(operation: str, method: str, status: int, seconds: float) -> None:
    API_REQUEST_SECONDS.labels(operation, method, str(status)).observe(seconds)


@bp.route("/healthz")
def healthz():
    """200 when the database answers and a scheduler is alive, else 503, with each check.
    ``?scope=web`` checks the database only: for a load balancer, which should not take a
    web process out of service because the schedulers are down."""
    web_only = request.args.get("scope") == "web"
    checks: dict[str, dict] = {}
    started = time.perf_counter()
    try:
        with engine().reading() as session:
            session.execute(select(1))
            beats = heartbeat.heartbeats(session)
        checks["database"] = {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}
    except SQLAlchemyError as problem:
        checks["database"] = {"ok": False, "error": f"{type(problem).__name__}: the database does not answer"}
        beats = None
    if not web_only:
        if beats is None:
            checks["scheduler"] = {"ok": False, "error": "unknown: the database does not answer"}
        else:
            now = engine().clock()
            alive = [beat for beat in beats if heartbeat.is_alive(beat, now)]
            checks["scheduler"] = {
                "ok": bool(alive),
                "alive": len(alive),
                "last_beat_seconds_ago": round((now - beats[0].beat_at).total_seconds(), 1) if beats else None,
            }
            if not alive:
                checks["scheduler"]["error"] = ("no scheduler has reported in the last "
                                                f"{int(heartbeat.STALE_AFTER.total_seconds())} s: timers and "
                                                "escalations are not being handled; start `crmflow worker`")
    healthy = all(check["ok"] for check in checks.values())
    response = jsonify({"status": "ok" if healthy else "failing", "checks": checks})
    response.status_code = 200 if healthy else 503
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/metrics")
def metrics():
    expected = current_app.config.get("CRMFLOW_METRICS_TOKEN")
    if expected:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return Response("metrics need the token of CRMFLOW_METRICS_TOKEN\n", status=401,
                            headers={"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(PROCESS_METRICS))
    registry.register(DatabaseCollector(engine()))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _Forward(Collector):
    """This process's own metrics, beside the database's in one scrape."""

    def __init__(self, source: CollectorRegistry):
        self.source = source

    def collect(self):
        yield from self.source.collect()


class DatabaseCollector(Collector):
    """The installation's state, read from the database at each scrape (a handful of
    aggregate queries on indexed columns)."""

    def __init__(self, db_engine: Engine):
        self.engine = db_engine

    def collect(self):
        now = self.engine.clock()
        with self.engine.reading() as session:
            by_stage = session.execute(
                select(ProcessInstance.process_key, WorkItem.stage, func.count(),
                       func.coalesce(func.sum(case((WorkItem.due_at < now, 1), else_=0)), 0))
                .join(ProcessInstance, ProcessInstance.id == WorkItem.instance_id)
                .where(WorkItem.status == ItemStatus.OPEN.value)
                .group_by(ProcessInstance.process_key, WorkItem.stage)
            ).all()
            fired = dict(session.execute(
                select(Escalation.level, func.count()).where(Escalation.status == EscalationStatus.DONE.value)
                .group_by(Escalation.level)).all())
            outbox = session.execute(
                select(OutboxMessage.channel, OutboxMessage.status, func.count())
                .where(OutboxMessage.status.in_(_OPEN_OUTBOX_STATES))
                .group_by(OutboxMessage.channel, OutboxMessage.status)).all()
            oldest_timer = session.scalar(select(func.min(ProcessInstance.next_wakeup_at)).where(
                ProcessInstance.status == InstanceStatus.RUNNING.value, ProcessInstance.next_wakeup_at <= now))
            oldest_rung = session.scalar(select(func.min(Escalation.due_at)).where(
                Escalation.status == EscalationStatus.PENDING.value, Escalation.due_at <= now))
            beats = heartbeat.heartbeats(session)

        open_items = GaugeMetricFamily("crmflow_work_items_open", "Open work items, by process and stage.",
                                       labels=["process", "stage"])
        overdue_items = GaugeMetricFamily("crmflow_work_items_overdue",
                                          "Open work items past their deadline, by process and stage.",
                                          labels=["process", "stage"])
        for process, stage, count, overdue in by_stage:
            open_items.add_metric([process, stage], count)
            overdue_items.add_metric([process, stage], overdue)
        yield open_items
        yield overdue_items

        escalations = CounterMetricFamily("crmflow_escalations_sent",
                                          "Escalation rungs fired (notices sent), by level.", labels=["level"])
        for level in LEVELS:
            escalations.add_metric([level], fired.get(level, 0))
        yield escalations

        depth = GaugeMetricFamily("crmflow_outbox_messages",
                                  "Outbox messages not yet sent, by channel (email, webhook) and state.",
                                  labels=["channel", "status"])
        for channel, status, count in outbox:
            depth.add_metric([channel, status], count)
        yield depth

        yield GaugeMetricFamily("crmflow_timer_lag_seconds",
                                "How long the oldest due BPMN timer has been waiting to fire (0: none waits).",
                                value=_seconds_since(oldest_timer, now))
        yield GaugeMetricFamily("crmflow_escalation_lag_seconds",
                                "How long the oldest due escalation rung has been waiting to fire (0: none waits).",
                                value=_seconds_since(oldest_rung, now))
        yield GaugeMetricFamily("crmflow_schedulers_alive",
                                "Schedulers (crmflow worker, or embedded in a server) with a fresh heartbeat.",
                                value=sum(1 for beat in beats if heartbeat.is_alive(beat, now)))


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment is not None else 0.0
