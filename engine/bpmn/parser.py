"""BPMN parsing: SpiffWorkflow's CamundaParser, taught the Camunda attributes that
process designers actually use on user tasks and timers.

SpiffWorkflow 3.2 reads ``camunda:formData`` but ignores ``camunda:assignee``,
``candidateUsers``, ``candidateGroups``, ``dueDate`` and ``priority``; it evaluates
timer expressions as Python, so ``PT1H`` as Camunda Modeler writes it is a NameError; and
its timers read the wall clock, so the parser gives them the engine's (engine/bpmn/timers.py).
"""

from __future__ import annotations


from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import EventDefinitionParser
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    StartEvent,
)
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.event_parsers import (
    CamundaBoundaryEventParser,
    CamundaEndEventParser,
    CamundaIntermediateCatchEventParser,
    CamundaIntermediateThrowEventParser,
    CamundaStartEventParser,
)
from SpiffWorkflow.camunda.parser.task_spec import UserTaskParser
from SpiffWorkflow.camunda.specs.user_task import UserTask

from engine.bpmn.expressions import camunda_to_python, iso8601_literal
from engine.bpmn.timers import clocked

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"


class CrmUserTask(UserTask):
    """A user task that knows who should do it, by when, and how urgently.

    Every attribute keeps the designer's raw text: ``${curator}``, ``sales, managers``
    or ``P2D`` are resolved against the instance data when the work item is created.
    """

    def __init__(
        self,
        wf_spec,
        name,
        form,
        assignee: str | None = None,
        candidate_users: str | None = None,
        candidate_groups: str | None = None,
        due_date: str | None = None,
        priority: str | None = None,
        **kwargs,
    ):
        super().__init__(wf_spec, name, form, **kwargs)
        self.assignee = assignee
        self.candidate_users = candidate_users
        self.candidate_groups = candidate_groups
        self.due_date = due_date
        self.priority = priority


class CrmUserTaskParser(UserTaskParser):
    def create_task(self):
        return self.spec_class(
            self.spec,
            self.bpmn_id,
            form=self.get_form(),
            assignee=self._camunda("assignee"),
            candidate_users=self._camunda("candidateUsers"),
            candidate_groups=self._camunda("candidateGroups"),
            due_date=self._camunda("dueDate"),
            priority=self._camunda("priority"),
            **self.bpmn_attributes,
        )

    def _camunda(self, name: str) -> str | None:
        value = self.node.get(f"{{{CAMUNDA_NS}}}{name}")
        return value.strip() if value and value.strip() else None


class TimerExpressionMixin(EventDefinitionParser):
    """Timer expressions as Camunda writes them: ``PT1H``, ``R3/P1D``,
    ``2026-12-01T09:00:00Z`` or ``${followUpDate}``, rather than Python source; and timers
    that tell the time by the engine's clock."""

    def parse_timer_event(self, event):
        for tag in ("timeDate", "timeDuration", "timeCycle"):
            for node in self.xpath(f".//bpmn:{tag}"):
                if node.text is not None:
                    node.text = timer_expression_to_python(node.text)
        return clocked(super().parse_timer_event(event))


def timer_expression_to_python(text: str) -> str:
    stripped = text.strip()
    if iso8601_literal(stripped):
        return repr(stripped)
    return camunda_to_python(stripped)


class StartEventParser(TimerExpressionMixin, CamundaStartEventParser):
    pass


class EndEventParser(TimerExpressionMixin, CamundaEndEventParser):
    pass


class IntermediateCatchEventParser(TimerExpressionMixin, CamundaIntermediateCatchEventParser):
    pass


class IntermediateThrowEventParser(TimerExpressionMixin, CamundaIntermediateThrowEventParser):
    pass


class BoundaryEventParser(TimerExpressionMixin, CamundaBoundaryEventParser):
    pass


class CrmParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("userTask"): (CrmUserTaskParser, CrmUserTask),
        full_tag("startEvent"): (StartEventParser, StartEvent),
        full_tag("endEvent"): (EndEventParser, EndEvent),
        full_tag("intermediateCatchEvent"): (IntermediateCatchEventParser, IntermediateCatchEvent),
        full_tag("intermediateThrowEvent"): (IntermediateThrowEventParser, IntermediateThrowEvent),
        full_tag("boundaryEvent"): (BoundaryEventParser, BoundaryEvent),
    }

