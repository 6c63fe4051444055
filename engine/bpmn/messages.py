"""Messages between process instances, Camunda style: a message throw event, a message end
event or a send task publishes a message by the name of its bpmn:message and a correlation
key; a message catch event, boundary event, receive task or message start event of another
instance that waits for that name and key receives it (engine/runtime/messages.py keeps the
published messages and delivers them).

SpiffWorkflow 3.2's Camunda flavour evaluates a ``camunda:expression`` that Camunda itself
never has on a message event, so every message throw failed with ``Expression None``, and a
send task's plain SpiffWorkflow message could not be stored. Here a message never stays in
the instance that throws it: the engine takes it out after the step and publishes it.

The key is an expression evaluated in the instance's variables: the sender's when it
publishes, the receiver's when it begins to wait. A message carries a copy of the sender's
variables (or of those its ``messageVariables`` names); the receiver sets them as its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import uuid5
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn import BpmnEvent
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent

from engine.bpmn.support import DEFAULT_TIME_TO_LIVE, KEEP

# Where a waiting task keeps the keys it waits with, by message name, and a received payload.
_KEYS = "crmflow_correlation_keys"
_RECEIVED = "crmflow_received_message"


class MessageDefinition(MessageEventDefinition):
    """A message sent to, or awaited from, other instances."""

    def __init__(self, name, correlation_key: str | None = None, time_to_live: str = DEFAULT_TIME_TO_LIVE,
                 if_nobody_waits: str = KEEP, variables: tuple[str, ...] | None = None, **kwargs):
        super().__init__(name, correlation_properties=[], **kwargs)
        self.correlation_key = correlation_key  # a Python expression, or None: no key
        self.time_to_live = time_to_live  # an ISO 8601 duration
        self.if_nobody_waits = if_nobody_waits
        self.variables = variables  # the variables the message carries; None: all

    def throw(self, my_task):
        payload = {name: value for name, value in my_task.data.items()
                   if self.variables is None or name in self.variables}
        outgoing = OutgoingMessage(self, json_payload(payload), self.key_of(my_task), my_task.task_spec.bpmn_id,
                                   my_task.task_spec.bpmn_name)
        # Not caught inside the instance: the engine publishes it when the step is done.
        my_task.workflow.top_workflow.bpmn_events.append(outgoing)

    def key_of(self, my_task) -> str:
        """The correlation key in the task's variables ('' when the element names none); the
        message start event of an event subprocess evaluates it in the instance's start data."""
        if self.correlation_key is None:
            return ""
        context = my_task
        if isinstance(my_task.task_spec, StartEvent) and my_task.workflow is not my_task.workflow.top_workflow:
            context = start_task(my_task.workflow.top_workflow)
        try:
            value = my_task.workflow.script_engine.evaluate(context, self.correlation_key)
        except WorkflowTaskException as problem:
            raise WorkflowTaskException(f"The correlation key {self.correlation_key!r} of the message "
                                        f"'{self.name}' could not be evaluated: {problem.args[0]}",
                                        task=my_task) from problem
        if value is None or value == "":
            raise WorkflowTaskException(f"The correlation key {self.correlation_key!r} of the message '{self.name}' "
                                        "is empty: set the variable it names before this step.", task=my_task)
        return str(value)

    def waiting_key(self, my_task) -> str:
        """The key this waiting task receives the message with: computed once, when it began to wait."""
        keys = my_task.internal_data.setdefault(_KEYS, {})
        if self.name not in keys:
            keys[self.name] = self.key_of(my_task)
        return keys[self.name]

    def catches(self, my_task, event):
        return (isinstance(event.event_definition, MessageDefinition) and event.event_definition.name == self.name
                and event.correlations.get("key", "") == self.waiting_key(my_task))

    def catch(self, my_task, event=None):
        my_task.internal_data[_RECEIVED] = event.payload if event is not None else {}
        my_task._set_internal_data(event_fired=True)

    def update_task_data(self, my_task):
        my_task.set_data(**my_task.internal_data.get(_RECEIVED, {}))

    def reset(self, my_task):
        my_task.internal_data.pop(_KEYS, None)
        my_task.internal_data.pop(_RECEIVED, None)
        super().reset(my_task)


class OutgoingMessage(BpmnEvent):
    """A message a step threw: published by the engine once the step has run."""

    def __init__(self, definition: MessageDefinition, payload: dict[str, Any], key: str, element_id: str,
                 element_name: str | None):
        super().__init__(definition, payload=payload, correlations={"key": key})
        self.name = definition.name
        self.key = key
        self.element_id = element_id
        self.element_name = element_name


def incoming(name: str, key: str, payload: dict[str, Any]) -> BpmnEvent:
    """The event a receiving instance catches."""
    return BpmnEvent(MessageDefinition(name), payload=payload, correlations={"key": key})


@dataclass(frozen=True)
class Subscription:
    """A task waiting for a message."""

    task_id: str
    element_id: str
    name: str
    key: str


def subscriptions(workflow) -> dict[tuple[str, str], Subscription]:
    """The messages the instance waits for now, by (task id, message name): those of its
    waiting tasks, and, while it runs, those that start its event subprocesses."""
    found = {}
    for task in workflow.event_manager.tasks.values():
        for definition in _message_definitions(task.task_spec.event_definition):
            subscription = Subscription(str(task.id), task.task_spec.bpmn_id, definition.name,
                                        definition.waiting_key(task))
            found[(subscription.task_id, subscription.name)] = subscription
    triggers = workflow.spec.start.trigger_specs
    if not triggers or workflow.is_completed():
        return found
    start = start_task(workflow)
    for spec_name in triggers:
        for start_event in workflow.subprocess_specs[spec_name].bpmn_start_events:
            for definition in _message_definitions(start_event.event_definition):
                # No task waits for it: a stable id of its own, made of the instance's and the subprocess's.
                task_id = str(uuid5(workflow.task_tree.id, spec_name))
                subscription = Subscription(task_id, start_event.bpmn_id, definition.name, definition.key_of(start))
                found[(task_id, definition.name)] = subscription
    return found


def start_task(workflow):
    """The task the instance's start data went to."""
    return next(iter(workflow.get_tasks(spec_name="Start")), workflow.task_tree)


def start_message_names(spec) -> list[tuple[str, str]]:
    """(element id, message name) of the message start events of a process spec."""
    return [(task_spec.bpmn_id, definition.name)
            for task_spec in spec.task_specs.values()
            if isinstance(task_spec, StartEvent)
            for definition in _message_definitions(getattr(task_spec, "event_definition", None))]


def take_outgoing(workflow) -> list[OutgoingMessage]:
    """The messages the last run threw; other events nobody in the instance caught (a signal
    without a receiver) are dropped, as BPMN drops them."""
    return [event for event in workflow.get_events() if isinstance(event, OutgoingMessage)]


def _message_definitions(definition) -> list[MessageDefinition]:
    if isinstance(definition, MessageDefinition):
        return [definition]
    if isinstance(definition, MultipleEventDefinition):
        return [item for item in definition.event_definitions if isinstance(item, MessageDefinition)]
    return []


def json_payload(values: dict[str, Any]) -> dict[str, Any]:
    """The variables as JSON values: dates and date-times as ISO 8601 text, decimals as text;
    what JSON cannot hold at all is left out."""
    payload = {}
    for name, value in values.items():
        converted = _json_value(value)
        if converted is not _UNSENDABLE:
            payload[name] = converted
    return payload


_UNSENDABLE = object()


def _json_value(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [item for item in map(_json_value, value) if item is not _UNSENDABLE]
    if isinstance(value, dict):
        return {str(key): item for key, item in ((key, _json_value(item)) for key, item in value.items())
                if item is not _UNSENDABLE}
    return _UNSENDABLE
