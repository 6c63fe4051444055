"""Webhooks: signed events for integrators, delivered through the notification outbox.

When ``CRMFLOW_WEBHOOK_URLS`` is set, every engine step that starts or ends an instance,
or creates or completes a work item, and every escalation the sweep fires, writes one
``outbox_messages`` row (channel ``webhook``) per URL, in the transaction of the step:
an event exists exactly when its step committed. ``WebhookSender`` (a job of every
scheduler, see engine/scheduling/scheduler.py) POSTs the rows with the outbox's claim, retry and
never-twice rules (engine/outbox/notifications.py): a sender that stops between the POST and
recording it leaves the row ``uncertain`` rather than posting it again.

Each POST carries the event as JSON and these headers::

    X-Crmflow-Event: work_item.completed
    X-Crmflow-Delivery: 1234                 the outbox row: the same across retries
    X-Crmflow-Signature: t=1795424400,v1=<hex HMAC-SHA256 of "t.body" with the secret>

A receiver checks the signature with ``verify_signature`` (or its own code: docs/api.md)
and may use the event's ``id`` to recognise an event it has seen.

Settings (the same in every process: web servers and workers both write events):

CRMFLOW_WEBHOOK_URLS     space- or comma-separated http(s) URLs (unset: no webhooks)
CRMFLOW_WEBHOOK_SECRET   the HMAC key; required with URLs
CRMFLOW_WEBHOOK_EVENTS   comma-separated event types to send (default: all of EVENT_TYPES)
CRMFLOW_WEBHOOK_TIMEOUT  seconds to wait for a receiver (default 10)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.deadlines.escalation import ESCALATED
from engine.models import EventType, HistoryEvent, OutboxMessage, OutboxStatus, ProcessInstance
from engine.outbox.notifications import OutboxSender

log = logging.getLogger(__name__)

WEBHOOK = "webhook"
# History event type -> webhook event type.
_STEP_EVENTS = {
    EventType.INSTANCE_STARTED: "instance.started",
    EventType.INSTANCE_COMPLETED: "instance.completed",
    EventType.WORK_ITEM_CREATED: "work_item.created",
    EventType.WORK_ITEM_COMPLETED: "work_item.completed",
}
EVENT_TYPES = (*_STEP_EVENTS.values(), "work_item.escalated", "instance.escalated")
SIGNATURE_HEADER = "X-Crmflow-Signature"


def _webhook_type(event: HistoryEvent) -> str | None:
    if event.type == ESCALATED:
        if "skipped" in (event.detail or {}):  # a late reminder left out is no escalation
            return None
        return "work_item.escalated" if event.work_item_id is not None else "instance.escalated"
    return _STEP_EVENTS.get(event.type)
# A signature older than this is refused by verify_signature: a replayed request.
SIGNATURE_TOLERANCE_SECONDS = 300
MAX_URL_LENGTH = 320  # outbox_messages.recipient


@dataclass(frozen=True)
class WebhookSettings:
    urls: tuple[str, ...]
    secret: str
    events: frozenset[str] = frozenset(EVENT_TYPES)
    timeout: float = 10.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> WebhookSettings | None:
        urls = tuple(url for url in re.split(r"[\s,]+", environ.get("CRMFLOW_WEBHOOK_URLS", "")) if url)
        if not urls:
            return None
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or len(url) > MAX_URL_LENGTH:
                raise ValueError(f"CRMFLOW_WEBHOOK_URLS: {url!r} is not an http(s) URL of at most "
                                 f"{MAX_URL_LENGTH} characters")
        secret = environ.get("CRMFLOW_WEBHOOK_SECRET", "")
        if len(secret) < 16:
            raise ValueError("CRMFLOW_WEBHOOK_SECRET must be set to at least 16 characters when "
                             "CRMFLOW_WEBHOOK_URLS is set: receivers check every event's signature with it")
        events = frozenset(EVENT_TYPES)
        if environ.get("CRMFLOW_WEBHOOK_EVENTS"):
            events = frozenset(e.strip() for e in environ["CRMFLOW_WEBHOOK_EVENTS"].split(",") if e.strip())
            unknown = events - set(EVENT_TYPES)
            if unknown:
                raise ValueError(f"CRMFLOW_WEBHOOK_EVENTS: unknown {sorted(unknown)}; known are "
                                 f"{', '.join(EVENT_TYPES)}")
        timeout_text = environ.get("CRMFLOW_WEBHOOK_TIMEOUT", "10")
        try:
            timeout = float(timeout_text)
        except ValueError:
            raise ValueError(f"CRMFLOW_WEBHOOK_TIMEOUT={timeout_text!r} is not a number of seconds") from None
        return cls(urls=urls, secret=secret, events=events, timeout=timeout)


class EventWriter:
    """Turns history into webhook outbox rows, inside the transaction that made the history."""

    def __init__(self, settings: WebhookSettings):
        self.settings = settings

    def on_step(self, session: Session, events: list[HistoryEvent]) -> None:
        """The step listener (``processes.system`` adds it last): the outbox rows of the
        wanted events of the transaction, escalations fired by the sweep included."""
        wanted = [(kind, e) for e in events if (kind := _webhook_type(e)) in self.settings.events]
        if wanted:
            self._enqueue(session, [(kind, e.at, e.instance_id, e.work_item_id, e.task_spec, e.actor, e.detail or {})
                                    for kind, e in wanted])

    def _enqueue(self, session: Session, events: list[tuple]) -> None:
        # session.get: the instance as this transaction sees it, with what earlier listeners
        # changed (the CRM layer sets the business key of a deal or claim it just started).
        instances = {instance_id: session.get(ProcessInstance, instance_id)
                     for instance_id in {event[2] for event in events}}
        rows = []
        for kind, at, instance_id, work_item_id, task_spec, actor, detail in events:
            instance = instances[instance_id]
            payload = {
                "id": str(uuid.uuid4()),
                "type": kind,
                "occurred_at": at.isoformat(),
                "instance": {"id": instance_id, "process_key": instance.process_key if instance else None,
                             "business_key": instance.business_key if instance else None},
                "work_item_id": work_item_id,
                "task_spec": task_spec,
                "actor": actor,
                "detail": detail,
            }
            body = json.dumps(payload, ensure_ascii=False, sort_keys=True, default=str)
            rows += [{"channel": WEBHOOK, "recipient": url, "subject": kind, "body": body,
                      "status": OutboxStatus.PENDING, "attempts": 0, "next_attempt_at": at, "created_at": at}
                     for url in self.settings.urls]
        session.execute(insert(OutboxMessage), rows)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes, now: float | None = None,
                     tolerance: int = SIGNATURE_TOLERANCE_SECONDS) -> bool:
    """True when ``header`` (X-Crmflow-Signature) signs ``body`` with ``secret`` and is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), f"t={timestamp},v1={parts.get('v1', '')}")


class WebhookSender(OutboxSender):
    """POSTs the due webhook rows of the outbox; a 2xx answer is a delivery, anything else
    a failed attempt retried with back-off (engine/outbox/notifications.py)."""

    channel = WEBHOOK

    def __init__(self, engine, settings: WebhookSettings, **options: Any):
        super().__init__(engine, smtp=None, **options)
        self.settings = settings

    def _transport(self, message_id: int, recipient: str, subject: str, body: str) -> str:
        data = body.encode("utf-8")
        request = urllib.request.Request(recipient, data=data, method="POST", headers={
            "Content-Type": "application/json",
            "User-Agent": "crmflow-webhooks",
            "X-Crmflow-Event": subject,
            "X-Crmflow-Delivery": str(message_id),
            SIGNATURE_HEADER: signature(self.settings.secret, int(time.time()), data),
        })
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as refused:  # a non-2xx answer: an OSError, so retried
            raise OSError(f"{recipient} answered {refused.code} {refused.reason}") from None
        log.info("Webhook %s (%s) delivered to %s: %s", message_id, subject, recipient, status,
                 extra={"outbox_id": message_id})
        return f"{recipient} answered {status}"
