"""One transaction per engine step: a failure half-way leaves the database exactly as before."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from engine.runtime import Engine
from engine.runtime.step import Stepper
from support.engine import GOOD_REQUEST


def snapshot(engine: Engine) -> dict[str, list]:
    with engine.reading() as session:
        tables = inspect(session.bind).get_table_names()
        return {
            table: [tuple(row) for row in session.execute(text(f'SELECT * FROM "{table}" ORDER BY 1'))]
            for table in sorted(tables)
        }


class Boom(Exception):
    pass


@pytest.mark.parametrize("failing_point", ["_create_item", "_sync_work_items"])
def test_an_exception_mid_step_leaves_every_table_as_it_was(company, monkeypatch, failing_point):
    instance = company.start("approval", {"curator": "ann"})
    [item] = company.work_items(instance_id=instance.id)
    before = snapshot(company)

    original = getattr(Stepper, failing_point)

    def fail_after_real_work(self, session, *args, **kwargs):
        original(self, session, *args, **kwargs)
        session.flush()  # the step's writes have reached the database...
        raise Boom("the machine died here")  # ...and then the step fails

    monkeypatch.setattr(Stepper, failing_point, fail_after_real_work)
    with pytest.raises(Boom):
        company.complete(item.id, GOOD_REQUEST, "ann")

    assert snapshot(company) == before
    monkeypatch.undo()
    company.complete(item.id, GOOD_REQUEST, "ann")
    assert company.work_item(item.id).status == "completed"


def test_a_failed_start_leaves_no_instance_behind(company):
    before = snapshot(company)
    with pytest.raises(Exception):
        company.start("approval", {})  # ${curator} is missing
    assert snapshot(company) == before
