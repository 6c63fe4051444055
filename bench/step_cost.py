"""What one persisted engine step costs, and whether history makes it slower.

A step is what ``Engine.complete`` does for one work item: load the instance, complete
the task, run the engine to the next wait state, write the state, the work items and
the history, commit (SQLite, WAL). It is timed after 10, 100, 1,000 and 10,000 prior
iterations of a loop, next to SpiffWorkflow's own in-memory cycle for the same step
(deserialize_json, complete, do_engine_steps, serialize_json; stock CamundaParser and
script engine), measured in the same run. Stock SpiffWorkflow stalls near iteration
333, so its cycle is measured where it still runs.

    python bench/step_cost.py [--samples 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.parser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

from engine.runtime import Engine

LOOP = Path(__file__).with_name("loop.bpmn")
CHECKPOINTS = (10, 100, 1_000, 10_000)


def persisted_steps(samples: int) -> dict[int, list[float]]:
    with tempfile.TemporaryDirectory() as folder:
        engine = Engine(f"sqlite:///{folder}/bench.db")
        engine.init_db()
        engine.add_user("ann")
        engine.deploy([LOOP])
        instance = engine.start("bench_loop", {"n": 0})
        [item] = engine.work_items(instance_id=instance.id)
        done, timings = 0, {}

        def step() -> float:
            nonlocal item, done
            started = time.perf_counter()
            engine.complete(item.id, {"finished": False}, "ann", expected_version=item.version)
            elapsed = time.perf_counter() - started
            [item] = engine.work_items(instance_id=instance.id)
            done += 1
            return elapsed

        for checkpoint in CHECKPOINTS:
            while done < checkpoint:
                step()
            timings[checkpoint] = [step() for _ in range(samples)]
        assert engine.instance(instance.id).data["n"] == done
        engine.dispose()
        return timings


def spiff_cycles(prior_iterations: int, samples: int) -> list[float]:
    parser = CamundaParser()
    parser.add_bpmn_file(str(LOOP))
    serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
    workflow = BpmnWorkflow(parser.get_spec("bench_loop"), parser.get_subprocess_specs("bench_loop"))
    workflow.get_tasks(state=TaskState.READY)[0].data["n"] = 0
    workflow.do_engine_steps()

    def complete(wf: BpmnWorkflow) -> None:
        [task] = wf.get_tasks(state=TaskState.READY, manual=True)
        task.data["finished"] = False
        task.run()
        wf.do_engine_steps()

    for _ in range(prior_iterations):
        complete(workflow)
    state = serializer.serialize_json(workflow)
    timings = []
    for _ in range(samples):
        started = time.perf_counter()
        restored = serializer.deserialize_json(state)
        complete(restored)
        serializer.serialize_json(restored)
        timings.append(time.perf_counter() - started)
    return timings


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.3f}"


def p95(values: list[float]) -> str:
    return f"{sorted(values)[int(len(values) * 0.95)] * 1000:7.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="steps timed at each checkpoint")
    samples = parser.parse_args().samples

    spiff = {n: spiff_cycles(n, samples) for n in (10, 100)}
    persisted = persisted_steps(samples)

    print(f"crmflow persisted step on SQLite, {samples} samples per row (ms)")
    print(f"{'prior iterations':>16} {'median':>8} {'p95':>8}   {'SpiffWorkflow cycle median':>26}")
    for n in CHECKPOINTS:
        baseline = ms(spiff[n]) if n in spiff else "stalls (>333 iterations)"
        print(f"{n:>16,} {ms(persisted[n])} {p95(persisted[n])}   {baseline:>26}")
    step_10 = statistics.median(persisted[10])
    print()
    print(f"step at 10,000 / step at 10:                 {statistics.median(persisted[10_000]) / step_10:.2f}x  (target <= 1.5)")
    print(f"step at 10 / SpiffWorkflow's own cycle at 10: {step_10 / statistics.median(spiff[10]):.2f}x  (target <= 1.5)")


if __name__ == "__main__":
    main()
