"""The scheduler fires BPMN timers on time (real clock: SpiffWorkflow's timers read it)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from engine.models import EventType
from engine.scheduling.scheduler import Scheduler
from processes.system import build_system
from webui.cli import command_line

HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="{key}_defs" targetNamespace="http://crmflow.test">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
"""
FOOTER = "  </bpmn:process>\n</bpmn:definitions>\n"

PROCESSES = {
    # An intermediate timer catch event: wait, then a user task.
    "catch": """
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="pause"/>
    <bpmn:intermediateCatchEvent id="pause"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="pause" targetRef="after"/>
    <bpmn:userTask id="after" name="After the pause" camunda:assignee="ann">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="after" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
""",
    # A timer at a moment the process computed (a call-back time, say).
    "dated": """
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="until"/>
    <bpmn:intermediateCatchEvent id="until"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDate>${callAt}</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="until" targetRef="call"/>
    <bpmn:userTask id="call" name="Call back" camunda:assignee="ann">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
""",
    # An interrupting boundary timer: the task is cancelled, the escalation path taken.
    "interrupting": """
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
    <bpmn:userTask id="work" name="Answer the customer" camunda:assignee="ann">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="timeout" cancelActivity="true" attachedToRef="work"><bpmn:outgoing>ft</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>PT1S</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="ft" sourceRef="timeout" targetRef="takeover"/>
    <bpmn:userTask id="takeover" name="Take over" camunda:assignee="ann">
      <bpmn:incoming>ft</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
    <bpmn:sequenceFlow id="f2" sourceRef="takeover" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
""",
    # A non-interrupting boundary timer cycle: three reminders while the task stays open.
    "cycle": """
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
    <bpmn:userTask id="work" name="Negotiate" camunda:assignee="ann">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
    <bpmn:boundaryEvent id="nudge" cancelActivity="false" attachedToRef="work"><bpmn:outgoing>fn</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>R3/PT1S</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="fn" sourceRef="nudge" targetRef="count"/>
    <bpmn:scriptTask id="count" name="Count"><bpmn:incoming>fn</bpmn:incoming><bpmn:outgoing>fc</bpmn:outgoing>
      <bpmn:script>nudges = nudges + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:sequenceFlow id="fc" sourceRef="count" targetRef="counted"/>
    <bpmn:endEvent id="counted"><bpmn:incoming>fc</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
""",
}


@pytest.fixture
def timer_system(database_url, tmp_path):
    system = build_system(database_url, webhooks=None)  # the real clock: SpiffWorkflow's timers read it
    system.init_db()
    engine = system.engine
    engine.add_user("ann")
    for key, body in PROCESSES.items():
        path = tmp_path / f"{key}.bpmn"
        path.write_text(HEADER.format(key=key) + body + FOOTER)
        engine.deploy([path])
    yield system
    system.dispose()


@pytest.fixture
def timers(timer_system):
    return timer_system.engine


def wait_until(condition, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def fired(engine, instance_id):
    return [e for e in engine.instance(instance_id).history if e.type == EventType.TIMER_FIRED.value]


def timer_state(engine, instance_id) -> str:
    """What an instance's timers did, for a failure's message."""
    moments = [event.at.isoformat() for event in fired(engine, instance_id)]
    return (f"now {datetime.now(timezone.utc).isoformat()}; fired at {moments}; "
            f"next wake-up {engine.instance(instance_id).instance.next_wakeup_at}")


def timer_lags(engine, instance_id, due):
    return [(e.at - due).total_seconds() for e in fired(engine, instance_id)]


def test_timers_fire_on_time_and_their_successors_run(timer_system, timers):
    catch = timers.start("catch")
    interrupting = timers.start("interrupting")
    cycle = timers.start("cycle", {"nudges": 0})
    call_at = datetime.now(timezone.utc) + timedelta(seconds=1.5)
    dated = timers.start("dated", {"callAt": call_at.isoformat()})
    assert timers.instance(dated.id).instance.next_wakeup_at == call_at
    catch_due = timers.instance(catch.id).instance.next_wakeup_at
    interrupting_due = timers.instance(interrupting.id).instance.next_wakeup_at
    scheduler = Scheduler(timers, timer_system.escalation, poll=0.5).start()
    try:
        # Three seconds of cycle; the margin is for a starved CI machine, and costs a passing run nothing.
        assert wait_until(lambda: len(fired(timers, cycle.id)) == 3, timeout=30), timer_state(timers, cycle.id)
        time.sleep(1.5)  # R3: no fourth
        assert wait_until(lambda: [i.name for i in timers.work_items(instance_id=interrupting.id)] == ["Take over"], 5)
        assert [i.name for i in timers.work_items(instance_id=catch.id)] == ["After the pause"]
        assert wait_until(lambda: [i.name for i in timers.work_items(instance_id=dated.id)] == ["Call back"], 5)
    finally:
        scheduler.shutdown()
    # Each timer fired once, within a second of its moment.
    for instance_id, due in ((catch.id, catch_due), (interrupting.id, interrupting_due), (dated.id, call_at)):
        [lag] = timer_lags(timers, instance_id, due)
        assert 0 <= lag < 1.0
    history = timers.instance(interrupting.id).history
    assert [e.detail["reason"] for e in history if e.type == "work_item_cancelled"] == [
        "the process moved on without this step"]
    # The non-interrupting cycle left the task open, three times reminded.
    assert [i.name for i in timers.work_items(instance_id=cycle.id)] == ["Negotiate"]
    assert len(fired(timers, cycle.id)) == 3
    assert timers.instance(cycle.id).instance.next_wakeup_at is None


def test_two_schedulers_fire_each_timer_once(timer_system, timers):
    instances = [timers.start("catch") for _ in range(5)]
    schedulers = [Scheduler(timers, timer_system.escalation, poll=0.3, worker=f"w{n}").start() for n in range(2)]
    try:
        assert wait_until(lambda: all(timers.work_items(instance_id=i.id) for i in instances), timeout=10)
        time.sleep(0.5)
    finally:
        for scheduler in schedulers:
            scheduler.shutdown()
    for instance in instances:
        history = timers.instance(instance.id).history
        assert [e.type for e in history].count(EventType.TIMER_FIRED.value) == 1
        assert len(timers.work_items(instance_id=instance.id)) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_escalate_command_runs_one_sweep(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CRMFLOW_DATABASE_URL", database_url)
    monkeypatch.delenv("CRMFLOW_SMTP_HOST", raising=False)
    monkeypatch.delenv("CRMFLOW_CALENDAR", raising=False)
    system = build_system(database_url, webhooks=None)
    system.init_db()
    engine = system.engine
    engine.add_user("ann")
    path = tmp_path / "due.bpmn"
    path.write_text(HEADER.format(key="due") + """
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="work"/>
    <bpmn:userTask id="work" name="Overdue work" camunda:assignee="ann" camunda:dueDate="2020-01-01T09:00:00Z">
      <bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing></bpmn:userTask>
    <bpmn:sequenceFlow id="f1" sourceRef="work" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
""" + FOOTER)
    engine.deploy([path])
    engine.start("due")
    engine.dispose()
    runner = CliRunner()
    first = runner.invoke(command_line(), ["escalate"])
    assert first.exit_code == 0, first.output
    assert "Escalated 2 (breach: 1, head: 1); skipped 0" in first.output
    second = runner.invoke(command_line(), ["escalate"])
    assert "Escalated 0 (none due)" in second.output


def test_bad_intervals_are_refused(timer_system, timers):
    with pytest.raises(ValueError, match="positive"):
        Scheduler(timers, timer_system.escalation, poll=0)
