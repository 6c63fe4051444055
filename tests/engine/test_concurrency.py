"""Races: exactly one completion wins each, nothing is lost or doubled.

On SQLite many threads share one Engine, as the web server's threads do; on PostgreSQL
many processes each open their own, as several machines would.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections import Counter

import pytest

from engine.errors import Conflict
from engine.runtime import Engine
from processes.system import build_system
from support import TEST_BPMN

RACERS = 8
ROUNDS = 6


def race_complete(engine: Engine, item_id: int, version: int, user: str, barrier) -> str:
    barrier.wait()
    try:
        engine.complete(item_id, {"discount": 10}, user, expected_version=version)
        return "won"
    except Conflict:
        return "conflict"


def prepare(engine: Engine) -> list[tuple[int, int]]:
    items = []
    for _ in range(ROUNDS):
        instance = engine.start("approval", {"curator": "ann"})
        [item] = engine.work_items(instance_id=instance.id)
        items.append((item.id, item.version))
    return items


def check_outcome(engine: Engine, outcomes: list[list[str]], items) -> None:
    for per_item in outcomes:
        assert Counter(per_item) == {"won": 1, "conflict": RACERS - 1}
    for item_id, _ in items:
        item = engine.work_item(item_id)
        assert item.status == "completed"
        history = engine.instance(item.instance_id).history
        assert [e.type for e in history].count("work_item_completed") == 1
        assert len(engine.work_items(instance_id=item.instance_id)) == 1  # the review, once


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_threads_racing_on_sqlite(company):
    items = prepare(company)
    outcomes = []
    for item_id, version in items:
        barrier = threading.Barrier(RACERS)
        results: list[str] = []
        threads = [
            threading.Thread(target=lambda: results.append(race_complete(company, item_id, version, "ann", barrier)))
            for _ in range(RACERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outcomes.append(results)
    check_outcome(company, outcomes, items)


def _racer(url: str, items, barrier, results) -> None:
    engine = build_system(url, webhooks=None).engine
    try:
        for item_id, version in items:
            results.put((item_id, race_complete(engine, item_id, version, "ann", barrier)))
    finally:
        engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_processes_racing_on_postgresql(company, database_url):
    items = prepare(company)
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(RACERS), context.Queue()
    racers = [context.Process(target=_racer, args=(database_url, items, barrier, results)) for _ in range(RACERS)]
    for racer in racers:
        racer.start()
    collected = [results.get(timeout=120) for _ in range(RACERS * len(items))]
    for racer in racers:
        racer.join(timeout=60)
        assert racer.exitcode == 0
    per_item = {item_id: [] for item_id, _ in items}
    for item_id, outcome in collected:
        per_item[item_id].append(outcome)
    check_outcome(company, list(per_item.values()), items)


def test_parallel_branches_completed_at_once_join_exactly_once(company):
    """Three people finish the three parallel branches of one instance at the same moment."""
    company.deploy([TEST_BPMN / "parallel_loop.bpmn"])
    instance = company.start("parallel_loop", {"total": 0, "rounds": 0})
    items = company.work_items(instance_id=instance.id)
    assert sorted(i.task_spec for i in items) == ["a", "b", "c"]
    barrier = threading.Barrier(len(items))
    errors = []

    def finish(item):
        barrier.wait()
        data = {f"v{item.task_spec}": 1, **({"stop": True} if item.task_spec == "c" else {})}
        try:
            company.complete(item.id, data, "ann")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=finish, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    details = company.instance(instance.id)
    assert details.instance.status == "completed"
    assert (details.data["total"], details.data["rounds"]) == (3, 1)
