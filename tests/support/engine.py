"""Fixtures of every layer's tests: a clock the test moves, and an engine on a migrated database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from engine.runtime import Engine
from engine.runtime.assignment import calendar_due

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
def engine(database_url, clock):
    # Calendar time, so that deadlines in these tests read plainly; working time has its own tests.
    engine = Engine(database_url, clock=clock, due_calculator=calendar_due)
    engine.init_db()
    yield engine
    engine.dispose()

