"""Fixtures of the engine's tests."""

from __future__ import annotations

import pytest

from support import TEST_BPMN


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
    engine.deploy([TEST_BPMN])
    return engine
