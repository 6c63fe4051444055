"""BPMN timers tell the time by the engine's clock (engine/bpmn/timers.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy import select

from engine.bpmn.parser import CrmParser
from engine.bpmn.scripting import SandboxedScriptEngine
from engine.bpmn.timers import ClockedDurationTimerEventDefinition, recurring_interval, step_moment
from engine.errors import ProcessFailed
from engine.models import EventType, ItemStatus, ProcessInstance, User, WorkItem
from engine.runtime.state import StateCodec
from support import DATA

STATES = DATA / "states"

WAIT = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="wait_defs"
    targetNamespace="http://crmflow.test">
  <bpmn:process id="wait" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>
    <bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="pause"/>
    <bpmn:intermediateCatchEvent id="pause"><bpmn:incoming>f0</bpmn:incoming><bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:{tag}>{time}</bpmn:{tag}></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="pause" targetRef="end"/>
    <bpmn:endEvent id="end"><bpmn:incoming>f1</bpmn:incoming></bpmn:endEvent>
  </bpmn:process>
</bpmn:definitions>
"""


def fired(engine, instance_id) -> list[datetime]:
    return [e.at for e in engine.instance(instance_id).history if e.type == EventType.TIMER_FIRED]


def test_a_state_stored_before_the_engine_clock_loads_and_its_timers_fire(engine, clock):
    """An instance as crmflow stored it while SpiffWorkflow's own timers armed it by the wall
    clock: a reminder cycle (R2/PT1H) and a take-over (PT3H) on an open user task."""
    stored = json.loads((STATES / "nudged_before_engine_clock.json").read_text())
    engine.add_user("ann")
    [deployed] = engine.deploy([STATES / stored["process"]])
    first_nudge = datetime.fromisoformat(stored["next_wakeup_at"])
    timeout = datetime.fromisoformat(stored["timeout_at"])
    armed_at = datetime.fromisoformat(stored["updated_at"])
    with engine.transaction() as session:
        instance = ProcessInstance(definition_id=deployed.definition_id, process_key="nudged", state=stored["state"],
                                   status="running", started_at=armed_at, updated_at=armed_at,
                                   next_wakeup_at=first_nudge)
        session.add(instance)
        session.flush()
        item = stored["open_item"]
        session.add(WorkItem(instance_id=instance.id, task_id=item["task_id"], task_spec=item["task_spec"],
                             name=item["name"], stage=item["name"], created_at=armed_at,
                             assignee_id=session.scalar(select(User.id).where(User.username == item["assignee"]))))
        instance_id = instance.id

    clock.now = first_nudge - timedelta(microseconds=1)
    assert engine.due_instances() == []
    engine.wake(instance_id)
    assert fired(engine, instance_id) == []

    clock.now = first_nudge
    assert engine.due_instances() == [instance_id]
    engine.wake(instance_id)
    assert fired(engine, instance_id) == [first_nudge]
    # The cycle goes on an hour after the moment it fired at.
    assert engine.instance(instance_id).instance.next_wakeup_at == first_nudge + timedelta(hours=1)

    clock.now = first_nudge + timedelta(hours=1)
    engine.wake(instance_id)
    clock.now = timeout
    engine.wake(instance_id)
    assert fired(engine, instance_id) == [first_nudge, first_nudge + timedelta(hours=1), timeout]
    [take_over] = engine.work_items(instance_id=instance_id)
    assert take_over.name == "Take over"
    [negotiate] = engine.work_items(instance_id=instance_id, status=ItemStatus.CANCELLED)
    assert negotiate.name == "Negotiate"
    assert engine.instance(instance_id).instance.next_wakeup_at is None


def test_a_duration_in_months_counts_the_months_of_the_engine_clock(engine, clock, tmp_path):
    (tmp_path / "wait.bpmn").write_text(WAIT.format(tag="timeDuration", time="P1M"))
    engine.deploy([tmp_path / "wait.bpmn"])
    clock.now = datetime(2027, 2, 1, 9, tzinfo=timezone.utc)
    instance = engine.start("wait")
    assert instance.next_wakeup_at == datetime(2027, 3, 1, 9, tzinfo=timezone.utc)  # February's 28 days


@pytest.mark.parametrize(("tag", "kind", "value"), [("timeDuration", "duration", "soon"),
                                                   ("timeDate", "date", "P2D"), ("timeCycle", "cycle", "R3")])
def test_a_computed_time_that_is_no_time_fails_the_step_and_names_the_timer(engine, tmp_path, tag, kind, value):
    (tmp_path / "wait.bpmn").write_text(WAIT.format(tag=tag, time="${when}"))
    engine.deploy([tmp_path / "wait.bpmn"])
    with pytest.raises(ProcessFailed, match=f"'pause': The timer's {kind} '{value}' is not an ISO 8601 {kind}"):
        engine.start("wait", {"when": value})
    with engine.reading() as session:
        assert session.scalar(select(ProcessInstance.id)) is None


@pytest.mark.parametrize("expression", ["R3/2027-02-01T09:00:00+00:00/PT2H", "R2/P1M/2027-03-01T00:00:00+00:00",
                                        "R/2027-01-31T12:00:00+00:00/P1M"])
def test_cycles_with_their_own_start_or_end_read_as_spiffworkflow_reads_them(expression):
    now = datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert recurring_interval(expression, now) == TimerEventDefinition.parse_iso_recurring_interval(expression)


def test_a_cycle_of_intervals_only_starts_one_interval_after_the_step():
    now = datetime(2027, 2, 1, 9, tzinfo=timezone.utc)
    assert recurring_interval("R5/P1M", now) == (5, datetime(2027, 3, 1, 9, tzinfo=timezone.utc), timedelta(days=28))
    assert recurring_interval("R/PT15M", now) == (-1, now + timedelta(minutes=15), timedelta(minutes=15))


def test_a_timer_run_outside_an_engine_step_is_refused(tmp_path):
    parser = CrmParser()
    path = tmp_path / "wait.bpmn"
    path.write_text(WAIT.format(tag="timeDuration", time="PT1H"))
    parser.add_bpmn_file(str(path))
    with pytest.raises(RuntimeError, match="outside an engine step"):
        BpmnWorkflow(parser.get_spec("wait"), script_engine=SandboxedScriptEngine()).do_engine_steps()
    workflow = BpmnWorkflow(parser.get_spec("wait"), script_engine=SandboxedScriptEngine())
    with step_moment(datetime(2027, 2, 1, 9, tzinfo=timezone.utc)):
        workflow.do_engine_steps()
    [event] = workflow.waiting_events()
    assert event.value == "2027-02-01T10:00:00+00:00"


def test_the_state_codec_keeps_spiffworkflow_s_names_for_engine_clock_timers(tmp_path):
    """What the state keeps of an event (``bpmn_events``) carries its definition by name."""
    parser = CrmParser()
    path = tmp_path / "wait.bpmn"
    path.write_text(WAIT.format(tag="timeDuration", time="PT1H"))
    parser.add_bpmn_file(str(path))
    spec = parser.get_spec("wait")
    script_engine = SandboxedScriptEngine()
    workflow = BpmnWorkflow(spec, script_engine=script_engine)
    timer = spec.task_specs["pause"].event_definition
    assert isinstance(timer, ClockedDurationTimerEventDefinition)
    workflow.bpmn_events.append(BpmnEvent(timer, {}))
    codec = StateCodec()
    text = codec.dumps(workflow)
    assert '"typename":"DurationTimerEventDefinition"' in text
    [restored] = codec.loads(text, spec, {}, script_engine).bpmn_events
    assert type(restored.event_definition) is ClockedDurationTimerEventDefinition
    assert restored.event_definition == timer
