"""Fixtures of every layer's tests: a clock the test moves, and crmflow on a migrated database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.runtime.assignment import calendar_due
from processes.system import build_system

# The approval process's first form, filled in well.
GOOD_REQUEST = {"discount": "10", "reason": "loyal customer", "valid_until": "2026-12-31", "urgent": "on"}


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime | None = None):
        self.now = now or datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def system(database_url, clock):
    """crmflow as it runs (processes.system), on a migrated database, without webhooks.
    Calendar time, so that deadlines in these tests read plainly; working time has its own tests."""
    system = build_system(database_url, clock=clock, due_calculator=calendar_due, webhooks=None)
    system.init_db()
    yield system
    system.dispose()


@pytest.fixture
def engine(system):
    return system.engine

