"""Webhooks: signed events for instance start and end, work items created, completed and
escalated, written in the step's transaction, posted through the outbox, retried, never twice."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from engine.models import OutboxMessage
from engine.outbox.notifications import OutboxSender, SmtpSettings
from engine.outbox.webhooks import SIGNATURE_HEADER, WebhookSender, WebhookSettings, verify_signature
from engine.runtime.assignment import calendar_due
from processes.system import build_system
from support import TEST_BPMN

SECRET = "a-webhook-secret-of-some-length"


class Receiver:
    """An HTTP endpoint on loopback that records what it is sent; answers ``failures`` 500s first."""

    def __init__(self, failures: int = 0):
        self.received: list[tuple[dict, bytes]] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((dict(self.headers), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/crmflow-events"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        return [json.loads(body) for _headers, body in self.received]

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def hooked_system(database_url, clock, receiver, monkeypatch):
    """crmflow whose steps write webhooks for ``receiver`` (the settings are read when it is built)."""
    monkeypatch.setenv("CRMFLOW_WEBHOOK_URLS", receiver.url)
    monkeypatch.setenv("CRMFLOW_WEBHOOK_SECRET", SECRET)
    system = build_system(database_url, clock=clock, due_calculator=calendar_due)
    system.init_db()
    engine = system.engine
    engine.add_user("boss", "Boris Head", roles=["employee", "manager"])
    engine.add_user("ann", "Anna Sales", manager="boss")
    engine.add_group("sales", "Sales", head="boss", members=["ann"])
    engine.add_group("heads", "Heads", members=["boss"])
    engine.deploy([TEST_BPMN / "approval.bpmn"])
    yield system
    system.dispose()


@pytest.fixture
def hooked(hooked_system):
    return hooked_system.engine


def sender(engine) -> WebhookSender:
    return WebhookSender(engine, WebhookSettings.from_environment(), first_retry=timedelta(0))


def test_each_event_is_posted_once_signed_and_in_order(hooked, receiver, clock):
    instance = hooked.start("approval", {"curator": "ann"}, started_by="ann", business_key="DEAL-1")
    [item] = hooked.work_items(instance_id=instance.id)
    hooked.complete(item.id, {"discount": 5}, "ann")
    [review] = hooked.work_items(instance_id=instance.id)
    hooked.claim(review.id, "boss")
    hooked.complete(review.id, {"approved": True}, "boss")

    assert sender(hooked).send_due()["sent"] == 6
    assert sender(hooked).send_due() == {"sent": 0, "retried": 0, "failed": 0, "uncertain": 0}
    events = receiver.events()
    assert [e["type"] for e in events] == ["instance.started", "work_item.created", "work_item.completed",
                                           "work_item.created", "work_item.completed", "instance.completed"]
    assert len({e["id"] for e in events}) == 6
    assert events[0]["instance"] == {"id": instance.id, "process_key": "approval", "business_key": "DEAL-1"}
    assert events[2]["work_item_id"] == item.id and events[2]["actor"] == "ann"
    assert events[2]["detail"]["data"]["discount"] == 5
    for headers, body in receiver.received:
        assert verify_signature(SECRET, headers[SIGNATURE_HEADER], body)
        assert not verify_signature("another secret", headers[SIGNATURE_HEADER], body)
        assert headers["X-Crmflow-Event"] == json.loads(body)["type"]
    assert not verify_signature(SECRET, receiver.received[0][0][SIGNATURE_HEADER], b"{}")


def test_a_failed_delivery_is_retried_and_the_escalation_is_an_event(hooked_system, hooked, receiver, clock):
    instance = hooked.start("approval", {"curator": "ann"}, started_by="ann")
    sender(hooked).send_due()
    receiver.received.clear()
    clock.advance(days=2, hours=1)
    assert hooked_system.escalation.sweep().fired == 1  # the breach (the reminder's moment passed while none swept)

    receiver.failures = 1
    first = sender(hooked).send_due()
    assert (first["sent"], first["retried"]) == (0, 1)
    assert sender(hooked).send_due()["sent"] == 1
    [escalated] = receiver.events()
    assert escalated["type"] == "work_item.escalated" and escalated["instance"]["id"] == instance.id
    assert escalated["detail"]["level"] == "breach"
    [row] = [m for m in _messages(hooked) if m.subject == "work_item.escalated"]
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_step_that_fails_writes_no_event(hooked):
    instance = hooked.start("approval", {"curator": "ann"}, started_by="ann")
    [item] = hooked.work_items(instance_id=instance.id)
    before = len(_messages(hooked))
    with pytest.raises(Exception):
        hooked.complete(item.id, {"discount": 500}, "ann")
    assert len(_messages(hooked)) == before


def test_the_mail_sender_leaves_webhooks_alone(hooked):
    hooked.start("approval", {"curator": "ann"}, started_by="ann")
    counts = OutboxSender(hooked, SmtpSettings(host="127.0.0.1", port=9)).send_due()
    assert counts == {"sent": 0, "retried": 0, "failed": 0, "uncertain": 0}
    assert {m.status for m in _messages(hooked)} == {"pending"}


def test_settings_are_checked(monkeypatch):
    assert WebhookSettings.from_environment({}) is None
    with pytest.raises(ValueError, match="CRMFLOW_WEBHOOK_SECRET"):
        WebhookSettings.from_environment({"CRMFLOW_WEBHOOK_URLS": "https://example.test/hook"})
    with pytest.raises(ValueError, match="not an http"):
        WebhookSettings.from_environment({"CRMFLOW_WEBHOOK_URLS": "ftp://x", "CRMFLOW_WEBHOOK_SECRET": SECRET})
    with pytest.raises(ValueError, match="unknown"):
        WebhookSettings.from_environment({"CRMFLOW_WEBHOOK_URLS": "https://a.test/h", "CRMFLOW_WEBHOOK_SECRET": SECRET,
                                          "CRMFLOW_WEBHOOK_EVENTS": "deal.won"})
    only = WebhookSettings.from_environment({"CRMFLOW_WEBHOOK_URLS": "https://a.test/h https://b.test/h",
                                             "CRMFLOW_WEBHOOK_SECRET": SECRET,
                                             "CRMFLOW_WEBHOOK_EVENTS": "instance.started"})
    assert only.urls == ("https://a.test/h", "https://b.test/h") and only.events == {"instance.started"}


def _messages(engine) -> list[OutboxMessage]:
    with engine.reading() as session:
        return list(session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook")
                                    .order_by(OutboxMessage.id)))
