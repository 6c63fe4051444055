"""A real SMTP server for the tests that send e-mail."""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller

from engine.outbox.notifications import SmtpSettings


class SmtpSink:
    """A local SMTP server (aiosmtpd) that keeps every message it receives."""

    def __init__(self):
        self.messages = []
        self._lock = threading.Lock()
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 Message accepted for delivery"

    @property
    def settings(self) -> SmtpSettings:
        return SmtpSettings(host="127.0.0.1", port=self.port, sender="crmflow@test.local", timeout=5)

    def received(self) -> list[tuple[str, str]]:
        """(recipient, subject) of each message, in arrival order."""
        with self._lock:
            return [(rcpt, message["Subject"]) for rcpts, message in self.messages for rcpt in rcpts]

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
