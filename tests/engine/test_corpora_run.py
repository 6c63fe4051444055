"""Independently written BPMN files (../shared/corpora): every executable process the engine
accepts runs to its first wait state, or stops with a clear error naming the element —
never a raw Python exception."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.bpmn.validation import BpmnValidationError
from engine.errors import CrmflowError
from engine.runtime import Engine
from support import REPOSITORY

CORPORA = Path(os.environ.get("CRMFLOW_CORPORA", REPOSITORY.parent / "shared" / "corpora"))
CAMUNDA = CORPORA / "camunda-bpm-examples"


def corpus_files():
    if not CAMUNDA.is_dir():
        return []
    return sorted(CAMUNDA.rglob("*.bpmn"))


@pytest.fixture(scope="module")
def corpus_engine(tmp_path_factory):
    engine = Engine(f"sqlite:///{tmp_path_factory.mktemp('corpora')}/corpora.db")
    engine.init_db()
    engine.add_user("demo")
    yield engine
    engine.dispose()


def deploy_with_decisions(engine: Engine, bpmn: Path):
    decisions = sorted(bpmn.parent.glob("*.dmn"))
    return engine.deploy([bpmn, *decisions])


@pytest.mark.skipif(not CAMUNDA.is_dir(), reason=f"no corpora at {CORPORA}")
def test_camunda_examples_run_to_their_first_wait_state(corpus_engine):
    outcomes: dict[str, str] = {}
    for bpmn in corpus_files():
        name = str(bpmn.relative_to(CAMUNDA))
        try:
            deployed = deploy_with_decisions(corpus_engine, bpmn)
        except BpmnValidationError as error:
            assert all(p.file and p.message for p in error.problems)
            outcomes[name] = "rejected"
            continue
        for result in deployed:
            try:
                instance = corpus_engine.start(result.key, {}, started_by="demo")
            except CrmflowError as error:
                message = str(error)
                assert "Traceback" not in message and "KeyError(" not in message, f"{name}: {message}"
                outcomes[f"{name}#{result.key}"] = "failed clearly"
                continue
            # A wait state: a work item, a timer, or an event (message, signal) it waits for.
            outcomes[f"{name}#{result.key}"] = instance.status

    counts = {kind: sum(1 for v in outcomes.values() if v == kind) for kind in set(outcomes.values())}
    print("corpus outcomes:", counts)
    assert counts.get("running", 0) + counts.get("completed", 0) >= 40, counts
