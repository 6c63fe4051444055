"""In-app notifications and the e-mail outbox, sent to a real SMTP server started by the test."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine import people
from engine.errors import UnknownUser
from engine.models import OutboxMessage
from engine.outbox.notifications import EMAIL, IN_APP, Inbox, OutboxSender, SmtpSettings, notify, outbox_messages
from support.mail import SmtpSink, free_port


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def staff(engine):
    engine.add_user("ann", "Anna Sales", email="ann@example.test")
    engine.add_user("nomail", "No Mail")
    return engine


def write_notification(engine, username: str, subject: str, channels=(IN_APP, EMAIL)) -> list[str]:
    with engine.transaction() as session:
        return notify(session, people.get_user(session, username), kind="test", subject=subject,
                      body=f"Body of {subject}", now=engine.clock(), channels=channels)


def test_in_app_notifications_have_an_unread_count(staff):
    inbox = Inbox(staff)
    assert write_notification(staff, "ann", "first") == [IN_APP, EMAIL]
    assert write_notification(staff, "nomail", "no address") == [IN_APP]  # no e-mail without an address
    write_notification(staff, "ann", "second")
    assert inbox.unread_count("ann") == 2
    newest, oldest = inbox.notifications("ann")
    assert (newest.subject, oldest.subject) == ("second", "first")
    assert inbox.mark_read("ann", [oldest.id]) == 1
    assert inbox.unread_count("ann") == 1
    assert [n.subject for n in inbox.notifications("ann", unread_only=True)] == ["second"]
    # Nobody marks another user's notifications read.
    assert inbox.mark_read("nomail", [newest.id]) == 0
    assert inbox.mark_read("ann") == 1
    assert inbox.unread_count("ann") == 0
    with pytest.raises(UnknownUser):
        inbox.unread_count("ghost")


def test_the_outbox_sends_each_message_once(staff, smtp):
    write_notification(staff, "ann", "Overdue: call the customer")
    sender = OutboxSender(staff, smtp.settings)
    assert sender.send_due() == {"sent": 1, "retried": 0, "failed": 0, "uncertain": 0}
    assert sender.send_due()["sent"] == 0
    assert smtp.received() == [("ann@example.test", "Overdue: call the customer")]
    [(_, message)] = smtp.messages
    assert message["From"] == "crmflow@test.local"
    assert "Body of Overdue" in message.get_content()
    with staff.reading() as session:
        [row] = session.scalars(select(OutboxMessage))
    assert (row.status, row.attempts) == ("sent", 1)
    assert "accepted by 127.0.0.1" in row.result


def test_a_failed_send_is_retried_with_back_off_and_then_given_up(staff, clock):
    write_notification(staff, "ann", "Reminder")
    down = SmtpSettings(host="127.0.0.1", port=free_port(), timeout=2)  # nothing listens there
    sender = OutboxSender(staff, down, max_attempts=3, first_retry=timedelta(seconds=30))
    assert sender.send_due()["retried"] == 1
    assert sender.send_due()["retried"] == 0  # not due again before its back-off
    with staff.reading() as session:
        row = session.scalar(select(OutboxMessage))
    assert row.status == "pending" and row.next_attempt_at == clock() + timedelta(seconds=30)
    assert "ConnectionRefusedError" in row.result
    clock.advance(seconds=30)
    assert sender.send_due()["retried"] == 1
    with staff.reading() as session:
        assert session.scalar(select(OutboxMessage.next_attempt_at)) == clock() + timedelta(seconds=60)
    clock.advance(seconds=60)
    assert sender.send_due()["failed"] == 1
    clock.advance(days=1)
    assert sender.send_due() == {"sent": 0, "retried": 0, "failed": 0, "uncertain": 0}


def test_a_message_recovers_when_the_server_comes_back(staff, clock, smtp):
    write_notification(staff, "ann", "Breach")
    smtp.stop()
    sender = OutboxSender(staff, smtp.settings, first_retry=timedelta(seconds=10))
    assert sender.send_due()["retried"] == 1
    smtp.controller = Controller(smtp, hostname="127.0.0.1", port=smtp.port)
    smtp.start()
    clock.advance(seconds=10)
    assert sender.send_due()["sent"] == 1
    assert smtp.received() == [("ann@example.test", "Breach")]


def test_a_sender_that_died_mid_send_never_causes_a_second_copy(staff, clock, smtp):
    write_notification(staff, "ann", "Maybe sent")
    crashed = OutboxSender(staff, smtp.settings, worker="crashed")
    assert len(crashed._claim()) == 1  # claimed, then the process died before recording anything
    survivor = OutboxSender(staff, smtp.settings, worker="survivor", lease=timedelta(minutes=10))
    assert survivor.send_due()["sent"] == 0
    clock.advance(minutes=11)
    assert survivor.send_due() == {"sent": 0, "retried": 0, "failed": 0, "uncertain": 1}
    assert smtp.received() == []
    with staff.reading() as session:
        assert session.scalar(select(OutboxMessage.status)) == "uncertain"


def test_smtp_settings_come_from_the_environment(monkeypatch):
    monkeypatch.delenv("CRMFLOW_SMTP_HOST", raising=False)
    assert SmtpSettings.from_environment() is None
    monkeypatch.setenv("CRMFLOW_SMTP_HOST", "mail.example.test")
    monkeypatch.setenv("CRMFLOW_SMTP_SECURITY", "ssl")
    monkeypatch.setenv("CRMFLOW_SMTP_FROM", "crm@example.test")
    settings = SmtpSettings.from_environment()
    assert (settings.host, settings.port, settings.security, settings.sender) == (
        "mail.example.test", 465, "ssl", "crm@example.test")
    monkeypatch.setenv("CRMFLOW_SMTP_SECURITY", "tls1.0")
    with pytest.raises(ValueError, match="CRMFLOW_SMTP_SECURITY='tls1.0'"):
        SmtpSettings.from_environment()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_admin_resends_an_uncertain_message_from_the_command_line(staff, clock, smtp, database_url, monkeypatch):
    from click.testing import CliRunner

    from webui.cli import command_line

    write_notification(staff, "ann", "Maybe sent")
    OutboxSender(staff, smtp.settings, worker="crashed")._claim()
    clock.advance(minutes=11)
    OutboxSender(staff, smtp.settings).send_due()  # marks it uncertain
    [message] = outbox_messages(staff, "uncertain")
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", database_url)
    runner = CliRunner()
    listing = runner.invoke(command_line(), ["outbox", "--status", "uncertain"])
    assert f"{message.id:6}  uncertain" in listing.output and "ann@example.test" in listing.output
    sent_twice = runner.invoke(command_line(), ["outbox", "--resend", str(message.id)])
    assert sent_twice.exit_code == 0 and "will be sent again" in sent_twice.output
    # The command's engine runs on the wall clock: catch this test's clock up with it.
    clock.now = max(clock.now, datetime.now(timezone.utc))
    assert OutboxSender(staff, smtp.settings).send_due()["sent"] == 1
    assert smtp.received() == [("ann@example.test", "Maybe sent")]
    refused = runner.invoke(command_line(), ["outbox", "--resend", str(message.id)])
    assert refused.exit_code == 1 and "is sent; only failed or uncertain" in refused.output
    missing = runner.invoke(command_line(), ["outbox", "--resend", "999"])
    assert "There is no outbox message 999." in missing.output
