"""/healthz, /metrics, the schedulers' heartbeats and structured logs."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.logs import JsonFormatter
from engine.models import OutboxMessage, OutboxStatus
from engine.scheduling import heartbeat
from engine.scheduling.scheduler import Scheduler
from support.office import start_approval
from webui.api import tokens as token_store


def samples(response) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value of a Prometheus exposition."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def test_healthz_needs_the_database_and_a_live_scheduler(app, office, clock):
    client = app.test_client()
    down = client.get("/healthz")
    assert down.status_code == 503
    assert down.json["checks"]["database"]["ok"] is True
    assert down.json["checks"]["scheduler"]["ok"] is False and "crmflow worker" in down.json["checks"]["scheduler"]["error"]
    assert client.get("/healthz?scope=web").status_code == 200

    heartbeat.beat(office, "host-a:1", clock())
    heartbeat.beat(office, "host-b:2", clock())
    up = client.get("/healthz")
    assert up.status_code == 200 and up.json["checks"]["scheduler"]["alive"] == 2

    clock.advance(seconds=heartbeat.STALE_AFTER.total_seconds() + 1)
    stale = client.get("/healthz")
    assert stale.status_code == 503
    assert stale.json["checks"]["scheduler"]["last_beat_seconds_ago"] == heartbeat.STALE_AFTER.total_seconds() + 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_healthz_says_so_when_the_database_is_gone(app, office, database_url, tmp_path):
    from processes.system import build_system
    from webui import create_app

    broken = create_app({"TESTING": True, "SECRET_KEY": "x"},
                        system=build_system(f"sqlite:///{tmp_path}/missing/dir/crmflow.db", webhooks=None))
    answer = broken.test_client().get("/healthz")
    assert answer.status_code == 503
    assert answer.json["checks"]["database"]["ok"] is False


def test_a_scheduler_keeps_its_heartbeat_and_takes_it_away_when_it_stops(system, office, clock):
    started = clock()
    scheduler = Scheduler(office, system.escalation, worker="test-worker").start(paused=True)  # the test runs its jobs
    try:
        assert scheduler.scheduler.get_job("heartbeat") is not None
        scheduler.beat()
        clock.advance(seconds=heartbeat.INTERVAL_SECONDS)
        scheduler.beat()
        # Beats on the engine's clock, like everything the scheduler decides.
        assert [(beat.worker, beat.started_at, beat.beat_at) for beat in _beats(office)] == [
            ("test-worker", started, clock())]
    finally:
        scheduler.shutdown()
    assert _beats(office) == []


def _beats(engine):
    with engine.reading() as session:
        return heartbeat.heartbeats(session)


def test_metrics_describe_work_escalations_outbox_lag_and_latency(app, system, office, clock):
    for n in range(3):
        start_approval(office, key=f"DEAL-{n}")  # ann's "Request discount", due in two days
    clock.advance(days=2, hours=1)
    system.escalation.sweep()  # the breach rungs fire
    clock.advance(hours=4)  # the head-of-department rungs fall due; no scheduler sweeps them
    with office.transaction() as session:
        session.add(OutboxMessage(channel="webhook", recipient="http://127.0.0.1:9/hook", subject="x", body="{}",
                                  status=OutboxStatus.PENDING, attempts=0, next_attempt_at=clock(),
                                  created_at=clock()))
    api = app.test_client()
    token = token_store.create_token(office, "ann", "metrics").secret
    api.get("/api/v1/work-items", headers={"Authorization": f"Bearer {token}"})

    values = samples(app.test_client().get("/metrics"))
    stage = (("process", "approval"), ("stage", "Negotiation"))
    assert values[("crmflow_work_items_open", stage)] == 3
    assert values[("crmflow_work_items_overdue", stage)] == 3
    assert values[("crmflow_escalations_sent_total", (("level", "breach"),))] == 3
    assert values[("crmflow_escalations_sent_total", (("level", "head"),))] == 0
    assert values[("crmflow_outbox_messages", (("channel", "webhook"), ("status", "pending")))] == 1
    assert values[("crmflow_escalation_lag_seconds", ())] == 3600  # due 4 h after the deadline, now 5 h
    assert values[("crmflow_timer_lag_seconds", ())] == 0
    assert values[("crmflow_schedulers_alive", ())] == 0
    assert values[("crmflow_api_request_seconds_count",
                   (("method", "GET"), ("operation", "listWorkItems"), ("status", "200")))] >= 1


def test_the_engine_step_histogram_times_the_api_calls(app, office):
    instance, item = start_approval(office)
    token = token_store.create_token(office, "ann", "metrics").secret
    client = app.test_client()
    before = samples(client.get("/metrics")).get(("crmflow_engine_step_seconds_count", (("operation", "complete"),)), 0)
    client.post(f"/api/v1/work-items/{item.id}/complete", headers={"Authorization": f"Bearer {token}"},
                json={"expected_version": 1, "data": {"discount": 5}})
    after = samples(client.get("/metrics"))[("crmflow_engine_step_seconds_count", (("operation", "complete"),))]
    assert after == before + 1


def test_metrics_can_require_a_token(app):
    app.config["CRMFLOW_METRICS_TOKEN"] = "scrape-secret"
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-secret"}).status_code == 200


def test_json_logs_carry_the_instance_and_work_item_ids(app, office, caplog):
    instance, item = start_approval(office)
    token = token_store.create_token(office, "ann", "logs").secret
    with caplog.at_level(logging.INFO, logger="crmflow.api"):
        app.test_client().post(f"/api/v1/work-items/{item.id}/complete", json={"expected_version": 1,
                                                                                "data": {"discount": 5}},
                               headers={"Authorization": f"Bearer {token}", "X-Request-Id": "req-7"})
    [record] = [r for r in caplog.records if r.name == "crmflow.api"]
    line = json.loads(JsonFormatter().format(record))
    assert line["work_item_id"] == item.id and line["instance_id"] == instance.id
    assert (line["user"], line["status"], line["operation"], line["request_id"]) == (
        "ann", 200, "completeWorkItem", "req-7")
    assert line["message"].startswith(f"POST /api/v1/work-items/{item.id}/complete 200")


def test_a_wrong_log_format_is_refused(monkeypatch):
    from engine.logs import formatter_from_environment

    monkeypatch.setenv("CRMFLOW_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="CRMFLOW_LOG_FORMAT"):
        formatter_from_environment()
