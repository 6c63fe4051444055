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
from processes.system import build_system

LOOP = Path(__file__).with_name("loop.bpmn")
CHECKPOINTS = (10, 100, 1_000, 10_000)


class PersistedLoop:
    """One instance of the loop, driven through the Engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.instance_id = engine.start("bench_loop", {"n": 0}).id
        self.iterations = 0
        [self.item] = engine.work_items(instance_id=self.instance_id)

    def step(self) -> float:
        started = time.perf_counter()
        self.engine.complete(self.item.id, {"finished": False}, "ann", expected_version=self.item.version)
        elapsed = time.perf_counter() - started
        [self.item] = self.engine.work_items(instance_id=self.instance_id)
        self.iterations += 1
        return elapsed

    def advance_to(self, iterations: int) -> "PersistedLoop":
        while self.iterations < iterations:
            self.step()
        return self


class SpiffLoop:
    """The same loop in stock SpiffWorkflow, kept as its own serializer's JSON."""

    def __init__(self, prior_iterations: int):
        parser = CamundaParser()
        parser.add_bpmn_file(str(LOOP))
        self.serializer = BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG))
        workflow = BpmnWorkflow(parser.get_spec("bench_loop"), parser.get_subprocess_specs("bench_loop"))
        workflow.get_tasks(state=TaskState.READY)[0].data["n"] = 0
        workflow.do_engine_steps()
        for _ in range(prior_iterations):
            self.complete(workflow)
        self.state = self.serializer.serialize_json(workflow)

    @staticmethod
    def complete(workflow: BpmnWorkflow) -> None:
        [task] = workflow.get_tasks(state=TaskState.READY, manual=True)
        task.data["finished"] = False
        task.run()
        workflow.do_engine_steps()

    def cycle(self) -> float:
        """Deserialize, complete, run, serialize: always from the same starting state."""
        started = time.perf_counter()
        restored = self.serializer.deserialize_json(self.state)
        self.complete(restored)
        self.serializer.serialize_json(restored)
        return time.perf_counter() - started


def measure(samples: int) -> tuple[dict[int, list[float]], list[float]]:
    """Round-robin: every sample times one step at each checkpoint and one SpiffWorkflow
    cycle back to back, so that all of them see the same machine."""
    with tempfile.TemporaryDirectory() as folder:
        system = build_system(f"sqlite:///{folder}/bench.db", webhooks=None)
        system.init_db()
        engine = system.engine
        engine.add_user("ann")
        engine.deploy([LOOP])
        # A fresh instance per sample at 10 prior iterations; one long instance for the others.
        fresh = [PersistedLoop(engine).advance_to(10) for _ in range(samples)]
        long_running = {n: PersistedLoop(engine).advance_to(n) for n in CHECKPOINTS[1:]}
        spiff = SpiffLoop(10)
        persisted: dict[int, list[float]] = {n: [] for n in CHECKPOINTS}
        baseline = []
        for sample in range(samples):
            persisted[10].append(fresh[sample].step())
            for n, loop in long_running.items():
                persisted[n].append(loop.step())
            baseline.append(spiff.cycle())
        for loop in [*fresh, *long_running.values()]:
            assert engine.instance(loop.instance_id).data["n"] == loop.iterations
        engine.dispose()
        return persisted, baseline


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.3f}"


def p95(values: list[float]) -> str:
    return f"{sorted(values)[int(len(values) * 0.95)] * 1000:7.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="steps timed at each checkpoint")
    samples = parser.parse_args().samples

    persisted, baseline = measure(samples)

    print(f"crmflow persisted step on SQLite, {samples} samples per row, interleaved (ms)")
    print(f"{'prior iterations':>16} {'median':>8} {'p95':>8}")
    for n in CHECKPOINTS:
        print(f"{n:>16,} {ms(persisted[n])} {p95(persisted[n])}")
    print(f"{'SpiffWorkflow cycle at 10':>26}: {ms(baseline)} {p95(baseline)}  "
          "(stock SpiffWorkflow stalls near iteration 333)")
    step_10 = statistics.median(persisted[10])
    print()
    print(f"step at 10,000 / step at 10:                 {statistics.median(persisted[10_000]) / step_10:.2f}x  (target <= 1.5)")
    print(f"step at 10 / SpiffWorkflow's own cycle at 10: {step_10 / statistics.median(baseline):.2f}x  (target <= 1.5)")


if __name__ == "__main__":
    main()
