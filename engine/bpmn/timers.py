"""BPMN timers on the engine's clock.

SpiffWorkflow 3.2's timer event definitions read the wall clock (``datetime.now``) when a
timer is armed, when it is checked for having fired and when a cycle moves on, so nothing
could run a process "as of" another moment and tests had to sleep for timers. crmflow's
parser builds the subclasses below instead. They take "now" from the engine step that runs
them: the engine wraps each step's run of the workflow in ``step_moment(now)``, with the
moment the step records in its history, so every timer of one step sees one moment.

A timer fires when its moment has come (``moment <= now``; SpiffWorkflow waits for
``moment < now``), which is when ``Engine.due_instances`` and the scheduler count it due:
a clock stopped exactly at a timer's moment fires it rather than waking it for nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)

_STEP_MOMENT: ContextVar[datetime | None] = ContextVar("crmflow_step_moment", default=None)


@contextmanager
def step_moment(now: datetime) -> Iterator[None]:
    """Run the block's timer evaluations as of ``now`` (an aware datetime)."""
    if now.tzinfo is None:
        raise ValueError(f"the moment of a step must be an aware datetime, not {now!r}")
    token = _STEP_MOMENT.set(now)
    try:
        yield
    finally:
        _STEP_MOMENT.reset(token)


def current_moment() -> datetime:
    """The moment of the step running now."""
    moment = _STEP_MOMENT.get()
    if moment is None:
        # Falling back on the wall clock would quietly bring back the second clock.
        raise RuntimeError("A BPMN timer was evaluated outside an engine step: run the workflow inside "
                           "engine.bpmn.timers.step_moment(now), so that its timers know what time it is.")
    return moment


class ClockedTimeDateEventDefinition(TimeDateEventDefinition):
    """A timer at a date-time (``timeDate``)."""

    def has_fired(self, my_task):
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            event_value = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            my_task._set_internal_data(event_value=event_value)
        if _parsed(my_task, "date", event_value, _date) <= current_moment():
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class ClockedDurationTimerEventDefinition(DurationTimerEventDefinition):
    """A timer a duration after it is armed (``timeDuration``)."""

    def has_fired(self, my_task):
        now = current_moment()
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            duration = _parsed(my_task, "duration", expression, TimerEventDefinition.parse_iso_duration)
            event_value = (now + TimerEventDefinition.get_timedelta_from_start(duration, now)).isoformat()
            my_task._set_internal_data(event_value=event_value)
        if TimerEventDefinition.get_datetime(event_value) <= now:
            my_task._set_internal_data(event_fired=True)
        return my_task._get_internal_data("event_fired", False)


class ClockedCycleTimerEventDefinition(CycleTimerEventDefinition):
    """A repeating timer (``timeCycle``, ``R3/PT1H``): fires at each moment of its cycle."""

    def cycle_complete(self, my_task):
        now = current_moment()
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            expression = my_task.workflow.script_engine.evaluate(my_task, self.expression)
            cycles, start, duration = _parsed(my_task, "cycle", expression,
                                             lambda text: recurring_interval(text, now))
            event_value = {"cycles": cycles, "next": start.isoformat(), "duration": duration.total_seconds()}

        # Ready: the parent task makes another child; event_fired: every cycle has run.
        ready = False
        if event_value["cycles"] != 0:
            next_event = datetime.fromisoformat(event_value["next"])
            if next_event <= now:
                event_value["next"] = (next_event + timedelta(seconds=event_value["duration"])).isoformat()
                event_value["cycles"] -= 1
                ready = True
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True

        my_task._set_internal_data(event_value=event_value)
        return ready


def recurring_interval(expression: str, now: datetime) -> tuple[int, datetime, timedelta]:
    """SpiffWorkflow's ``parse_iso_recurring_interval``, with "now" given: (cycles, first
    moment, interval); ``cycles`` is -1 for an unbounded cycle."""
    components = expression.upper().replace("--", "/").strip("R").split("/")
    cycles = int(components[0]) if components[0] else -1
    start_or_duration = TimerEventDefinition.parse_time_or_duration(components[1])
    end_or_duration = TimerEventDefinition.parse_time_or_duration(components[2]) if len(components) == 3 else None

    if isinstance(start_or_duration, datetime):
        start = start_or_duration
        duration = TimerEventDefinition.get_timedelta_from_start(end_or_duration, start)
    elif isinstance(end_or_duration, datetime):
        duration = TimerEventDefinition.get_timedelta_from_end(start_or_duration, end_or_duration)
        start = end_or_duration - duration
    elif end_or_duration is None:
        # Only an interval: the first moment is one interval from now.
        duration = TimerEventDefinition.get_timedelta_from_start(start_or_duration, now)
        start = now + duration
    else:
        raise ValueError(f"Invalid recurring interval {expression!r}")
    return cycles, start, duration


def _date(text: str) -> datetime:
    moment = TimerEventDefinition.parse_time_or_duration(text)
    if not isinstance(moment, datetime):
        raise ValueError("a duration where a date-time belongs")
    return moment


def _parsed(my_task, kind: str, value, parse):
    """``parse(value)``; a value the process computed that is no timer fails the step, naming the
    task (SpiffWorkflow's parsers raise bare exceptions, which would escape the engine's errors)."""
    try:
        return parse(value)
    except Exception as problem:
        raise WorkflowTaskException(f"The timer's {kind} {value!r} is not an ISO 8601 {kind} (such as "
                                    f"{_EXAMPLES[kind]})", task=my_task, exception=problem) from problem


_EXAMPLES = {"date": "2026-12-01T09:00:00Z", "duration": "PT2H or P2D", "cycle": "R3/P1D"}


_CLOCKED = {
    TimeDateEventDefinition: ClockedTimeDateEventDefinition,
    DurationTimerEventDefinition: ClockedDurationTimerEventDefinition,
    CycleTimerEventDefinition: ClockedCycleTimerEventDefinition,
}
# What the state codec names them: SpiffWorkflow's own names, so that what plain SpiffWorkflow
# wrote loads as timers on the engine's clock, and what crmflow writes plain SpiffWorkflow reads.
SERIALIZED_NAMES = {ours: spiff.__name__ for spiff, ours in _CLOCKED.items()}


def clocked(definition: TimerEventDefinition) -> TimerEventDefinition:
    """The engine-clock twin of a timer SpiffWorkflow's parser built."""
    return _CLOCKED[type(definition)](definition.name, definition.expression, description=definition.description)
