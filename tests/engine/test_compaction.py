"""History compaction keeps the live task tree bounded without changing what a process does.

Each case drives the same scripted answers through two copies of a process: one as
SpiffWorkflow runs it, one compacted (and serialized and reloaded) after every step.
They must agree step by step on which tasks are ready and on the data, for as long as
plain SpiffWorkflow can keep up; then the compacted one goes on for thousands of
iterations with a tree that does not grow.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.bpmn.parser import CrmParser
from engine.bpmn.scripting import SandboxedScriptEngine
from engine.bpmn.timers import step_moment
from engine.runtime.compaction import compact
from engine.runtime.state import StateCodec
from support import TEST_BPMN

BPMN = TEST_BPMN
script_engine = SandboxedScriptEngine()
codec = StateCodec()


@pytest.fixture(autouse=True)
def moment():
    """These runs are no engine steps: their timers are told the time as a step would tell them."""
    with step_moment(datetime(2026, 11, 23, 9, tzinfo=timezone.utc)):
        yield


def load(file: str, key: str):
    parser = CrmParser()
    parser.add_bpmn_file(str(BPMN / file))
    return parser.get_spec(key), parser.get_subprocess_specs(key)


def new_workflow(spec, subprocess_specs, data):
    workflow = BpmnWorkflow(spec, subprocess_specs, script_engine=script_engine)
    workflow.get_tasks(state=TaskState.READY)[0].data.update(data)
    workflow.do_engine_steps()
    return workflow


def task_count(workflow) -> int:
    return len(workflow.tasks) + sum(len(sp.tasks) for sp in workflow.subprocesses.values())


def ready_human_tasks(workflow):
    return sorted(workflow.get_tasks(state=TaskState.READY, manual=True), key=lambda t: t.task_spec.bpmn_id)


def step(workflow, answer, iteration):
    task = ready_human_tasks(workflow)[0]
    task.data.update(answer(task, iteration))
    task.run()
    workflow.do_engine_steps()


def parallel_answer(last):
    return lambda task, i: {f"v{task.task_spec.bpmn_id}": 1, **({"stop": i >= last} if task.task_spec.bpmn_id == "c" else {})}


CASES = {
    # A user task in a loop behind an exclusive gateway.
    "loop": ("loop.bpmn", "loop", {"n": 0, "owner": "ann", "finished": False},
             lambda last: lambda task, i: {"finished": i >= last}, 1),
    # A parallel gateway that splits into three user tasks and also merges the loop's back edge.
    "parallel": ("parallel_loop.bpmn", "parallel_loop", {"total": 0, "rounds": 0}, parallel_answer, 3),
    # A user task with a non-interrupting timer boundary event, followed by an embedded subprocess.
    "boundary+subprocess": ("timer_loop.bpmn", "timer_loop", {"calls": 0, "reminders": 0},
                            lambda last: lambda task, i: {"reached": i >= last}, 1),
    # A parallel multi-instance user task inside a loop.
    "multi-instance": ("mi_loop.bpmn", "mi_loop", {"rounds": 0, "target": 1500, "owners": ["ann", "bob"]},
                       lambda last: lambda task, i: {"ok": True}, 2),
}


@pytest.mark.parametrize("case", CASES)
def test_compacted_run_matches_plain_spiffworkflow(case):
    file, key, data, answer_for, _ = CASES[case]
    spec, subprocess_specs = load(file, key)
    answer = answer_for(10 ** 9)
    plain = new_workflow(spec, subprocess_specs, data)
    compacted = new_workflow(spec, subprocess_specs, data)
    for iteration in range(60):
        step(plain, answer, iteration)
        step(compacted, answer, iteration)
        compact(compacted)
        compacted = codec.loads(codec.dumps(compacted), spec, subprocess_specs, script_engine)
        assert [t.task_spec.bpmn_id for t in ready_human_tasks(compacted)] == \
               [t.task_spec.bpmn_id for t in ready_human_tasks(plain)], f"diverged at step {iteration}"
        assert ready_human_tasks(compacted)[0].data == ready_human_tasks(plain)[0].data
    assert task_count(compacted) < task_count(plain) / 3


@pytest.mark.parametrize("case", CASES)
def test_thousands_of_iterations_keep_the_tree_small(case):
    file, key, data, answer_for, steps_per_iteration = CASES[case]
    spec, subprocess_specs = load(file, key)
    iterations = 1500
    last_step = iterations * steps_per_iteration - 1
    workflow = new_workflow(spec, subprocess_specs, data)
    sizes = []
    for iteration in range(last_step + 1):
        step(workflow, answer_for(last_step), iteration)
        compact(workflow)
        sizes.append(task_count(workflow))
        if workflow.is_completed():
            break
    assert workflow.is_completed(), f"stalled after {iteration} steps"
    steady = sizes[:-1]  # the last step completes the process, which is not compacted
    assert max(steady[-100:]) <= max(steady[:100]), "the tree grew with the iterations"
    assert len(workflow.subprocesses) <= 2


def test_data_survives_compaction_exactly():
    spec, subprocess_specs = load("parallel_loop.bpmn", "parallel_loop")
    workflow = new_workflow(spec, subprocess_specs, {"total": 0, "rounds": 0})
    answer = parallel_answer(3 * 500 - 1)
    for iteration in range(3 * 500):
        step(workflow, answer, iteration)
        compact(workflow)
    assert workflow.is_completed()
    assert workflow.data["total"] == 3 * 500
    assert workflow.data["rounds"] == 500


def test_a_workflow_without_loops_is_left_alone():
    spec, subprocess_specs = load("approval.bpmn", "approval")
    workflow = new_workflow(spec, subprocess_specs, {"curator": "ann"})
    before = {t.id for t in workflow.tasks.values()}
    assert compact(workflow) == 0
    assert {t.id for t in workflow.tasks.values()} == before
