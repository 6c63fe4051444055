"""Notifications: in-app (stored, with an unread count) and e-mail through an outbox.

Writing a notification happens inside the transaction of whatever caused it (an
escalation, a step): the in-app row and the outbox row commit or roll back with it.
Sending e-mail happens afterwards, in ``OutboxSender``: it claims a row (``sending``),
commits, talks to the SMTP server, and records the server's answer. A failed attempt is
retried with exponential back-off; a sender that dies between the claim and the record
leaves the row ``sending``, and after ``lease`` it becomes ``uncertain`` instead of being
sent again, because it may already have been delivered: a message is never sent twice.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import people
from engine.errors import NotFound
from engine.models import Notification, OutboxMessage, OutboxStatus, User
from engine.texts import _

log = logging.getLogger(__name__)

IN_APP = "in_app"
EMAIL = "email"
CHANNELS = (IN_APP, EMAIL)


def notify(session: Session, user: User, *, kind: str, subject: str, body: str, now: datetime,
           channels: Sequence[str] = CHANNELS, instance_id: int | None = None, work_item_id: int | None = None,
           escalation_id: int | None = None) -> list[str]:
    """Record a notification for ``user`` on each channel; returns the channels used
    (e-mail is left out for a user without an address)."""
    used = []
    notification = None
    if IN_APP in channels:
        notification = Notification(user_id=user.id, kind=kind, subject=subject[:300], body=body,
                                    instance_id=instance_id, work_item_id=work_item_id,
                                    escalation_id=escalation_id, created_at=now)
        session.add(notification)
        used.append(IN_APP)
    if EMAIL in channels and user.email:
        session.add(OutboxMessage(channel=EMAIL, recipient=user.email, subject=subject[:300], body=body,
                                  notification=notification,
                                  status=OutboxStatus.PENDING, attempts=0, next_attempt_at=now,
                                  created_at=now))
        used.append(EMAIL)
    return used


class Inbox:
    """The in-app notifications of users, for the web UI's bell and list."""

    def __init__(self, engine):
        self.engine = engine

    def notifications(self, username: str, *, unread_only: bool = False, limit: int = 50,
                      offset: int = 0) -> list[Notification]:
        """Newest first."""
        with self.engine.reading() as session:
            user = people.get_user(session, username)
            query = select(Notification).where(Notification.user_id == user.id)
            if unread_only:
                query = query.where(Notification.read_at.is_(None))
            return list(session.scalars(query.order_by(Notification.id.desc()).limit(limit).offset(offset)))

    def unread_count(self, username: str) -> int:
        with self.engine.reading() as session:
            user = people.get_user(session, username)
            return session.scalar(
                select(func.count()).select_from(Notification)
                .where(Notification.user_id == user.id, Notification.read_at.is_(None))
            )

    def mark_read(self, username: str, notification_ids: Sequence[int] | None = None) -> int:
        """Mark the user's notifications read (all of them when no ids are given);
        returns how many changed. Other users' notifications are never touched."""
        with self.engine.transaction() as session:
            user = people.get_user(session, username)
            statement = update(Notification).where(Notification.user_id == user.id, Notification.read_at.is_(None))
            if notification_ids is not None:
                statement = statement.where(Notification.id.in_(list(notification_ids)))
            return session.execute(statement.values(read_at=self.engine.clock())).rowcount


def outbox_messages(engine, status: str | None = None, limit: int = 100) -> list[OutboxMessage]:
    """The outbox, newest first: for an admin looking at failed or uncertain mail."""
    with engine.reading() as session:
        query = select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(limit)
        if status is not None:
            query = query.where(OutboxMessage.status == status)
        return list(session.scalars(query))


def resend(engine, message_id: int) -> OutboxMessage:
    """An admin's decision to send a failed or uncertain message (again): back to pending."""
    with engine.transaction() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            raise NotFound(_("There is no outbox message %(message_id)s.", message_id=message_id),
                           code="outbox_message_not_found")
        if message.status not in (OutboxStatus.FAILED, OutboxStatus.UNCERTAIN):
            raise ValueError(f"Outbox message {message_id} is {message.status}; only failed or uncertain "
                             "messages are resent by hand.")
        message.status = OutboxStatus.PENDING
        message.next_attempt_at = engine.clock()
        message.attempts = 0
        message.claimed_by = message.claimed_at = None
        return message


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int = 25
    username: str | None = None
    password: str | None = None
    sender: str = "crmflow@localhost"
    security: str = "none"  # none | starttls | ssl
    timeout: float = 30.0

    @classmethod
    def from_environment(cls) -> SmtpSettings | None:
        """CRMFLOW_SMTP_HOST (unset: no e-mail is sent; messages wait in the outbox),
        CRMFLOW_SMTP_PORT, CRMFLOW_SMTP_USER, CRMFLOW_SMTP_PASSWORD, CRMFLOW_SMTP_FROM,
        CRMFLOW_SMTP_SECURITY (none, starttls or ssl)."""
        host = os.environ.get("CRMFLOW_SMTP_HOST")
        if not host:
            return None
        security = os.environ.get("CRMFLOW_SMTP_SECURITY", "none").lower()
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"CRMFLOW_SMTP_SECURITY={security!r}: use none, starttls or ssl")
        port_text = os.environ.get("CRMFLOW_SMTP_PORT", "465" if security == "ssl" else "25")
        if not port_text.isdigit():
            raise ValueError(f"CRMFLOW_SMTP_PORT={port_text!r} is not a port number")
        return cls(host=host, port=int(port_text), username=os.environ.get("CRMFLOW_SMTP_USER"),
                   password=os.environ.get("CRMFLOW_SMTP_PASSWORD"),
                   sender=os.environ.get("CRMFLOW_SMTP_FROM", "crmflow@localhost"), security=security)


class OutboxSender:
    """Sends the outbox's due e-mails; safe to run in several processes at once.

    The claiming, retrying and never-twice bookkeeping is the same for every channel:
    a sender handles the rows of its ``channel`` and delivers them with ``_transport``
    (engine/outbox/webhooks.py sends webhooks so)."""

    channel = EMAIL

    def __init__(self, engine, smtp: SmtpSettings, *, worker: str | None = None, batch: int = 50,
                 max_attempts: int = 8, first_retry: timedelta = timedelta(seconds=30),
                 lease: timedelta = timedelta(minutes=10)):
        self.engine = engine
        self.smtp = smtp
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.batch = batch
        self.max_attempts = max_attempts
        self.first_retry = first_retry
        self.lease = lease

    def send_due(self) -> dict[str, int]:
        """Send what is due now; returns counts of sent, retried, failed and uncertain."""
        counts = {"sent": 0, "retried": 0, "failed": 0, "uncertain": self._expire_stale_claims()}
        while True:
            claimed = self._claim()
            if not claimed:
                return counts
            for message_id, recipient, subject, body in claimed:
                outcome = self._deliver(message_id, recipient, subject, body)
                counts[outcome] += 1
            if len(claimed) < self.batch:
                return counts

    def _claim(self) -> list[tuple[int, str, str, str]]:
        now = self.engine.clock()
        with self.engine.transaction() as session:
            rows = session.execute(
                select(OutboxMessage.id, OutboxMessage.recipient, OutboxMessage.subject, OutboxMessage.body)
                .where(OutboxMessage.channel == self.channel, OutboxMessage.status == OutboxStatus.PENDING,
                       OutboxMessage.next_attempt_at <= now)
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(self.batch)
                .with_for_update(skip_locked=True)
            ).all()
            claimed = []
            for row in rows:
                # Conditional: only the sender that moves it from pending owns it.
                changed = session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == row.id, OutboxMessage.status == OutboxStatus.PENDING)
                    .values(status=OutboxStatus.SENDING, claimed_at=now, claimed_by=self.worker,
                            attempts=OutboxMessage.attempts + 1)
                ).rowcount
                if changed:
                    claimed.append(tuple(row))
            return claimed

    def _deliver(self, message_id: int, recipient: str, subject: str, body: str) -> str:
        try:
            answer = self._transport(message_id, recipient, subject, body)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as problem:
            return self._record_failure(message_id, f"{type(problem).__name__}: {problem}")
        now = self.engine.clock()
        with self.engine.transaction() as session:
            session.execute(
                update(OutboxMessage).where(OutboxMessage.id == message_id, OutboxMessage.claimed_by == self.worker)
                .values(status=OutboxStatus.SENT, sent_at=now, result=answer)
            )
        return "sent"

    def _record_failure(self, message_id: int, reason: str) -> str:
        now = self.engine.clock()
        with self.engine.transaction() as session:
            message = session.get(OutboxMessage, message_id)
            if message.attempts >= self.max_attempts:
                message.status, outcome = OutboxStatus.FAILED, "failed"
                log.error("Giving up on outbox message %s to %s after %s attempts: %s",
                          message_id, message.recipient, message.attempts, reason)
            else:
                message.status, outcome = OutboxStatus.PENDING, "retried"
                message.next_attempt_at = now + self.first_retry * (2 ** (message.attempts - 1))
                log.warning("Outbox message %s to %s failed (attempt %s), retrying at %s: %s",
                            message_id, message.recipient, message.attempts, message.next_attempt_at, reason)
            message.result = reason
        return outcome

    def _expire_stale_claims(self) -> int:
        cutoff = self.engine.clock() - self.lease
        with self.engine.transaction() as session:
            return session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.channel == self.channel, OutboxMessage.status == OutboxStatus.SENDING,
                       OutboxMessage.claimed_at < cutoff)
                .values(status=OutboxStatus.UNCERTAIN,
                        result="the sender stopped after claiming it; it may have been sent, so it is not resent")
            ).rowcount

    def _transport(self, message_id: int, recipient: str, subject: str, body: str) -> str:
        """Deliver one message; returns the receiver's answer, raises OSError (or an
        SMTP or SSL error) for a failed attempt, which is retried."""
        return self._smtp_send(message_id, recipient, subject, body)

    def _smtp_send(self, message_id: int, recipient: str, subject: str, body: str) -> str:
        message = EmailMessage()
        message["From"] = self.smtp.sender
        message["To"] = recipient
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        # Stable per outbox row, so that a mail system can recognise the message.
        message["Message-ID"] = make_msgid(idstring=f"crmflow-outbox-{message_id}")
        message["X-Crmflow-Outbox-Id"] = str(message_id)
        message.set_content(body)
        connect = smtplib.SMTP_SSL if self.smtp.security == "ssl" else smtplib.SMTP
        with connect(self.smtp.host, self.smtp.port, timeout=self.smtp.timeout) as client:
            if self.smtp.security == "starttls":
                client.starttls(context=ssl.create_default_context())
            if self.smtp.username:
                client.login(self.smtp.username, self.smtp.password or "")
            refused = client.send_message(message)
            if refused:
                raise smtplib.SMTPRecipientsRefused(refused)
        return f"accepted by {self.smtp.host}:{self.smtp.port} for {recipient}"
