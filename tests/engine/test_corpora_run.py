"""BPMN conformance over independently written files (../shared/corpora, or CRMFLOW_CORPORA):
what validates, runs. Every file is validated with the DMN files of its folder and the files of
its corpus that define the processes it calls; every file that validates is deployed, each of
its processes started and driven as far as it goes — work items completed with data generated
from their forms, timers fired by moving the clock — to its end, or to a wait for what nobody
sends it. A file is refused with its reasons, or runs: never a traceback. The counts are printed
(run with -s) and kept in docs/bpmn-support.md."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lxml import etree

from engine.bpmn.validation import BpmnValidationError, load_bundle
from engine.errors import CrmflowError
from engine.runtime import Engine
from engine.runtime.assignment import calendar_due
from support import REPOSITORY
from support.engine import Clock

CORPORA = Path(os.environ.get("CRMFLOW_CORPORA", REPOSITORY.parent / "shared" / "corpora"))
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
MAX_STEPS = 40  # a process of the corpora that is still not done after this many steps loops
DRIVER = "conformance"


@dataclass
class Outcomes:
    files: int = 0
    validated: int = 0
    not_executable: int = 0  # validated, and no process is marked executable
    refused: dict[str, str] = field(default_factory=dict)  # file -> its first error
    processes: Counter = field(default_factory=Counter)  # outcome of each started process
    stopped: dict[str, str] = field(default_factory=dict)  # process -> why it stopped with an error

    def table(self) -> str:
        p = self.processes
        rows = [
            ("files", self.files),
            ("validated", self.validated),
            ("  of which nothing is executable (isExecutable=\"false\": checked, not deployed)", self.not_executable),
            ("refused, each with its reasons", len(self.refused)),
            ("processes started", sum(p.values())),
            ("  ran to a wait state or the end", p["ended"] + p["waits"] + p["stopped later"]),
            ("    driven to the end", p["ended"]),
            ("    waiting for a message, signal or condition nobody sends", p["waits"]),
            ("    stopped later with a clear error", p["stopped later"]),
            ("  stopped at the start with a clear error", p["stopped at the start"]),
            ("tracebacks", 0),
        ]
        return "\n".join(f"| {name} | {count} |" for name, count in rows)


def corpus_files() -> list[Path]:
    return sorted(CORPORA.rglob("*.bpmn")) if CORPORA.is_dir() else []


def processes_defined(files: list[Path]) -> dict[Path, list[str]]:
    defined = {}
    for path in files:
        try:
            root = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
        except etree.XMLSyntaxError:
            continue
        defined[path] = [process.get("id") for process in root.iter(f"{BPMN}process")]
    return defined


def called_by(path: Path) -> list[str]:
    return [call.get("calledElement") for call in etree.parse(str(path)).getroot().iter(f"{BPMN}callActivity")
            if call.get("calledElement")]


def bundle_of(path: Path, defined: dict[Path, list[str]]) -> list[Path]:
    """The file, the DMN files of its folder, and the files of its corpus that define what it
    calls (the nearest one when several do), and what those call."""
    corpus = CORPORA / path.relative_to(CORPORA).parts[0]
    files, pending = [path], [path]
    while pending:
        for called in called_by(pending.pop()):
            definers = [other for other, keys in defined.items() if called in keys and other.is_relative_to(corpus)]
            if definers and not any(called in defined.get(f, []) for f in files):
                nearest = min(definers, key=lambda other: (len(other.relative_to(corpus).parts)
                                                           - len(_common(other, path)), str(other)))
                files.append(nearest)
                pending.append(nearest)
    return [*files, *sorted(path.parent.glob("*.dmn"))]


def _common(a: Path, b: Path) -> tuple[str, ...]:
    common = []
    for x, y in zip(a.parent.parts, b.parent.parts):
        if x != y:
            break
        common.append(x)
    return tuple(common)


def generated_value(spec):
    """A value a form field accepts."""
    constraints = spec.constraints
    if spec.type == "boolean":
        return True
    if spec.type == "long":
        return int(constraints.get("min") or 1)
    if spec.type == "date":
        return "2026-12-01"
    if spec.type == "enum":
        return spec.options[0][0] if spec.options else ""
    return "x" * max(1, int(constraints.get("minlength") or 1))


def drive(engine: Engine, clock: Clock, instance_id: int) -> str:
    """Take the instance as far as it goes; its outcome."""
    for _ in range(MAX_STEPS):
        instance = engine.instance(instance_id).instance
        if instance.status == "completed":
            return "ended"
        items = engine.work_items(instance_id=instance_id)
        if items:
            item = items[0]
            values = {spec.id: generated_value(spec) for spec in engine.user_task_form(item) if not spec.readonly}
            if item.assignee is None or item.assignee.username != DRIVER:
                item = engine.reassign(item.id, DRIVER, DRIVER, "conformance run")
            engine.complete(item.id, values, DRIVER)
        elif instance.next_wakeup_at is not None:
            clock.now = max(clock.now, instance.next_wakeup_at)
            engine.wake(instance_id)
        else:
            return "waits"
    return "waits"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> Outcomes:
    clock = Clock()
    engine = Engine(f"sqlite:///{tmp_path_factory.mktemp('corpora')}/corpora.db", clock=clock,
                    due_calculator=calendar_due)
    engine.init_db()
    engine.add_user(DRIVER, roles=["employee", "admin"])
    files = corpus_files()
    defined = processes_defined(files)
    result = Outcomes(files=len(files))
    for path in files:
        name = str(path.relative_to(CORPORA))
        bundle = bundle_of(path, defined)
        sources = {str(file.relative_to(CORPORA)): file.read_bytes() for file in bundle}
        try:
            loaded = load_bundle(sources)
        except BpmnValidationError as error:
            _assert_explained(error, sources)
            first = next(problem for problem in error.problems if problem.severity == "error")
            result.refused[name] = str(first)
            continue
        result.validated += 1
        if not loaded.processes:
            result.not_executable += 1
            continue
        own = set(defined[path])
        for deployed in engine.deploy(bundle):
            if deployed.key not in own:
                continue
            try:
                instance = engine.start(deployed.key, {}, started_by=DRIVER)
            except CrmflowError as error:
                result.processes["stopped at the start"] += 1
                result.stopped[f"{name}#{deployed.key}"] = str(error)
                continue
            try:
                result.processes[drive(engine, clock, instance.id)] += 1
            except CrmflowError as error:
                result.processes["stopped later"] += 1
                result.stopped[f"{name}#{deployed.key}"] = str(error)
    engine.dispose()
    print(f"\nBPMN conformance over {CORPORA}:\n{result.table()}")
    for file, reason in sorted(result.refused.items()):
        print(f"refused: {reason}")
    for process, reason in sorted(result.stopped.items()):
        print(f"stopped: {process}: {reason}")
    return result


def _assert_explained(error: BpmnValidationError, sources: dict[str, bytes]) -> None:
    for problem in error.problems:
        assert problem.file in sources and problem.message, problem
        assert "Traceback" not in problem.message and "Error(" not in problem.message, str(problem)


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"no BPMN corpora at {CORPORA} (set CRMFLOW_CORPORA)")
def test_what_validates_runs_and_what_does_not_is_refused_with_its_reasons(outcomes):
    assert outcomes.validated + len(outcomes.refused) == outcomes.files
    assert sum(outcomes.processes.values()) >= outcomes.validated - outcomes.not_executable
    ran = outcomes.processes["ended"] + outcomes.processes["waits"] + outcomes.processes["stopped later"]
    assert ran >= 0.9 * sum(outcomes.processes.values()), outcomes.table()
    # What stops is the corpus's own doing: variables that its Java delegates or its start
    # requests set, and crmflow cannot; each stop names the element and the variable.
    for process, reason in outcomes.stopped.items():
        assert reason.startswith(("'", "Expression", "User task")), f"{process}: {reason}"
        assert "Traceback" not in reason and "Error(" not in reason, f"{process}: {reason}"
        assert "is not defined" in reason or "is not set" in reason, f"{process}: {reason}"


@pytest.mark.skipif(not CORPORA.is_dir(), reason=f"no BPMN corpora at {CORPORA} (set CRMFLOW_CORPORA)")
def test_the_counts_in_docs_bpmn_support_are_those_of_the_corpora(outcomes):
    document = (REPOSITORY / "docs" / "bpmn-support.md").read_text(encoding="utf-8")
    assert outcomes.table() in document, f"put this table in docs/bpmn-support.md:\n{outcomes.table()}"
