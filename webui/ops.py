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
from datetime import datetime

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from engine.deadlines.escalation import LEVELS
from engine.runtime import Engine
from engine.scheduling import heartbeat
from webui import readmodel
from webui.access import engine
from webui.metrics import PROCESS_METRICS

bp = Blueprint("ops", __name__)


def init_app(app) -> None:
    app.config.setdefault("CRMFLOW_METRICS_TOKEN", os.environ.get("CRMFLOW_METRICS_TOKEN") or None)


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
            state = readmodel.installation_state(session, now)
            beats = heartbeat.heartbeats(session)

        open_items = GaugeMetricFamily("crmflow_work_items_open", "Open work items, by process and stage.",
                                       labels=["process", "stage"])
        overdue_items = GaugeMetricFamily("crmflow_work_items_overdue",
                                          "Open work items past their deadline, by process and stage.",
                                          labels=["process", "stage"])
        for process, stage, count, overdue in state.open_by_stage:
            open_items.add_metric([process, stage], count)
            overdue_items.add_metric([process, stage], overdue)
        yield open_items
        yield overdue_items

        escalations = CounterMetricFamily("crmflow_escalations_sent",
                                          "Escalation rungs fired (notices sent), by level.", labels=["level"])
        for level in LEVELS:
            escalations.add_metric([level], state.escalations_fired.get(level, 0))
        yield escalations

        depth = GaugeMetricFamily("crmflow_outbox_messages",
                                  "Outbox messages not yet sent, by channel (email, webhook) and state.",
                                  labels=["channel", "status"])
        for channel, status, count in state.outbox:
            depth.add_metric([channel, status], count)
        yield depth

        yield GaugeMetricFamily("crmflow_timer_lag_seconds",
                                "How long the oldest due BPMN timer has been waiting to fire (0: none waits).",
                                value=_seconds_since(state.oldest_due_timer, now))
        yield GaugeMetricFamily("crmflow_escalation_lag_seconds",
                                "How long the oldest due escalation rung has been waiting to fire (0: none waits).",
                                value=_seconds_since(state.oldest_due_rung, now))
        yield GaugeMetricFamily("crmflow_schedulers_alive",
                                "Schedulers (crmflow worker, or embedded in a server) with a fresh heartbeat.",
                                value=sum(1 for beat in beats if heartbeat.is_alive(beat, now)))


def _seconds_since(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment is not None else 0.0
