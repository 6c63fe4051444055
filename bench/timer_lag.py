"""How late do BPMN timers fire? The lag between a timer's due moment and its firing.

Starts instances whose intermediate timer events fall due at spread-out moments over the
next seconds, runs the scheduler as ``crmflow worker`` does (default poll, 1 s), and
reads each instance's ``timer_fired`` history event: its time minus the instance's
``next_wakeup_at`` before the firing is the lag. Printed: p50, p99 and max (target p99
<= 1 s).

    python bench/timer_lag.py [--timers 200] [--spread 20] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from engine.models import EventType, InstanceStatus, ProcessInstance
from engine.runtime import Engine
from engine.scheduling.scheduler import Scheduler
from processes.system import build_system

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="lag_defs"
    targetNamespace="http://crmflow.bench">
  <bpmn:process id="timer_lag" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="wait"/>
    <bpmn:intermediateCatchEvent id="wait"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDate>${wake_at}</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="wait" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timers", type=int, default=200)
    parser.add_argument("--spread", type=float, default=20.0, help="seconds over which the timers fall due")
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        system = build_system(args.database_url or f"sqlite:///{folder}/bench.db", webhooks=None)
        system.init_db()
        engine = system.engine
        path = Path(folder) / "timer_lag.bpmn"
        path.write_text(PROCESS)
        engine.deploy([path])
        lead = 3.0  # starting the instances takes a moment; the first timer is due after it
        base = time.time() + lead
        due = {}
        for n in range(args.timers):
            moment = base + args.spread * n / args.timers
            wake_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int(moment % 1 * 1e6):06d}+00:00"
            instance = engine.start("timer_lag", {"wake_at": wake_at})
            due[instance.id] = engine.instance(instance.id).instance.next_wakeup_at
        if time.time() > base:
            raise SystemExit("starting the instances took longer than the lead; use fewer --timers")
        scheduler = Scheduler(engine, system.escalation).start()  # poll 1 s, as crmflow worker runs by default
        try:
            deadline = time.time() + lead + args.spread + 30
            while time.time() < deadline and _still_waiting(engine):
                time.sleep(0.5)
        finally:
            scheduler.shutdown()
        lags = []
        for instance_id, moment in due.items():
            fired = [e.at for e in engine.instance(instance_id).history if e.type == EventType.TIMER_FIRED]
            assert len(fired) == 1, f"instance {instance_id} fired {len(fired)} times"
            lags.append((fired[0] - moment).total_seconds())
        engine.dispose()
    print(f"{len(lags)} timers over {args.spread:.0f} s, scheduler poll 1 s: lag "
          f"p50 {percentile(lags, 0.5) * 1000:.0f} ms, p99 {percentile(lags, 0.99) * 1000:.0f} ms, "
          f"max {max(lags) * 1000:.0f} ms, mean {statistics.mean(lags) * 1000:.0f} ms (target p99 <= 1000 ms)")


def _still_waiting(engine: Engine) -> int:
    with engine.reading() as session:
        return session.scalar(select(func.count()).select_from(ProcessInstance)
                              .where(ProcessInstance.status == InstanceStatus.RUNNING))


if __name__ == "__main__":
    main()
