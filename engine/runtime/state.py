"""An instance's live state as JSON, without the process spec it runs on.

SpiffWorkflow's serializer writes the whole parsed spec into every instance's state and
parses it back at every load; a definition version never changes, so crmflow keeps the
parsed spec in memory per definition and stores only the tasks and data.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from uuid import UUID

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.event_definition import TimerConditionalEventDefinitionConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.helpers.spec import EventDefinitionConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG

from engine.bpmn.messages import MessageDefinition
from engine.bpmn.timers import SERIALIZED_NAMES

STATE_FORMAT = 1


class LiveStateConverter(BpmnWorkflowConverter):
    def to_dict(self, workflow):
        dct = super(BpmnWorkflowConverter, self).to_dict(workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct, spec=None, subprocess_specs=None, script_engine=None):
        workflow = self.target_class(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


class MessageDefinitionConverter(EventDefinitionConverter):
    """A message an event-based gateway (or a multiple event) has seen is kept in the state
    with its definition, until the gateway runs."""

    def to_dict(self, event_definition):
        dct = super().to_dict(event_definition)
        variables = event_definition.variables
        dct.update(correlation_key=event_definition.correlation_key, time_to_live=event_definition.time_to_live,
                   if_nobody_waits=event_definition.if_nobody_waits,
                   variables=list(variables) if variables is not None else None)
        return dct

    def from_dict(self, dct):
        variables = dct.pop("variables")
        return MessageDefinition(**dct, variables=tuple(variables) if variables is not None else None)


def _registry():
    registry = BpmnWorkflowSerializer.configure({**CAMUNDA_CONFIG, BpmnWorkflow: LiveStateConverter})
    # The state leaves the spec out, but events it keeps (bpmn_events) carry their definition.
    for timer_class, typename in SERIALIZED_NAMES.items():
        TimerConditionalEventDefinitionConverter(timer_class, registry, typename)
    MessageDefinitionConverter(MessageDefinition, registry)
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    return registry


class StateCodec:
    def __init__(self):
        self._serializer = BpmnWorkflowSerializer(_registry())

    def dumps(self, workflow: BpmnWorkflow) -> str:
        dct = self._serializer.to_dict(workflow)
        dct["format"] = STATE_FORMAT
        return json.dumps(dct, cls=self._serializer._encoder_cls, separators=(",", ":"))

    def loads(self, text: str, spec, subprocess_specs, script_engine) -> BpmnWorkflow:
        dct = json.loads(text)
        if dct.pop("format", None) != STATE_FORMAT:
            raise ValueError("instance state was written by an incompatible crmflow version")
        return self._serializer.from_dict(
            dct, spec=spec, subprocess_specs=subprocess_specs, script_engine=script_engine
        )
