"""Fixtures for engine tests: a migrated database with a small company and the test processes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.runtime.assignment import calendar_due
from engine.runtime import Engine

BPMN = Path(__file__).parent / "bpmn"


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


@pytest.fixture
def company(engine):
    """boss heads sales; ann and bob sell and report to boss; eve works elsewhere."""
    engine.add_user("boss", "Boris Head", roles=["employee", "manager"])
    engine.add_user("ann", "Anna Sales", manager="boss")
    engine.add_user("bob", "Bob Sales", manager="boss")
    engine.add_user("eve", "Eve Other")
    engine.add_user("root", "Admin", roles=["admin"])
    engine.add_group("sales", "Sales", head="boss", members=["ann", "bob"])
    engine.add_group("heads", "Heads of department", members=["boss"])
    engine.deploy([BPMN])
    return engine
