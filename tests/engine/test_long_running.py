"""A deal that moves between stages for years: 10,000 persisted loop iterations neither
stall nor grow the stored state (plain SpiffWorkflow stalls near iteration 333)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.models import HistoryEvent, ProcessInstance


def state_size(engine, instance_id: int) -> int:
    with engine.reading() as session:
        return len(session.get(ProcessInstance, instance_id).state)


def drive_loop(engine, iterations: int) -> tuple[int, list[int]]:
    instance = engine.start("loop", {"n": 0, "owner": "ann", "finished": False})
    sizes = []
    for iteration in range(iterations):
        [item] = engine.work_items(instance_id=instance.id)
        engine.complete(item.id, {"finished": iteration == iterations - 1}, "ann", expected_version=item.version)
        if iteration in (100, iterations - 2):
            sizes.append(state_size(engine, instance.id))
    return instance.id, sizes


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ten_thousand_iterations_on_sqlite(company):
    instance_id, (early, late) = drive_loop(company, 10_000)

    details = company.instance(instance_id)
    assert details.instance.status == "completed"
    assert details.data["n"] == 10_000
    assert late <= early * 1.1, f"state grew from {early} to {late} bytes"
    with company.reading() as session:
        completions = session.scalar(select(func.count()).where(
            HistoryEvent.instance_id == instance_id, HistoryEvent.type == "work_item_completed"))
    assert completions == 10_000  # the history left the live state but is all kept


def test_a_thousand_iterations_on_each_backend(company):
    instance_id, (early, late) = drive_loop(company, 1_000)
    details = company.instance(instance_id)
    assert (details.instance.status, details.data["n"]) == ("completed", 1_000)
    assert late <= early * 1.1
