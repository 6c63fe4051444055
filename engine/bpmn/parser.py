"""BPMN parsing: SpiffWorkflow's CamundaParser, taught the Camunda attributes that
process designers actually use, for exactly the flow nodes engine/bpmn/support.py says run.

SpiffWorkflow 3.2 reads ``camunda:formData`` but ignores ``camunda:assignee``,
``candidateUsers``, ``candidateGroups``, ``dueDate``, ``priority`` and ``initiator``; it
evaluates timer expressions as Python, so ``PT1H`` as Camunda Modeler writes it is a
NameError; its timers read the wall clock, so the parser gives them the engine's
(engine/bpmn/timers.py); its Camunda flavour refuses standard multi-instance loops and
runs event subprocesses as if they were plain ones; and its messages stay inside one
instance, where crmflow sends them to others (engine/bpmn/messages.py). SpiffArena's
``spiffworkflow:preScript`` and ``postScript`` run on every task.
"""

from __future__ import annotations

from SpiffWorkflow.bpmn.exceptions import WorkflowDataException
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.parser.event_parsers import (
    BoundaryEventParser,
    EndEventParser,
    EventBasedGatewayParser,
    EventDefinitionParser,
    IntermediateCatchEventParser,
    IntermediateThrowEventParser,
    ReceiveTaskParser,
    SendTaskParser,
    StartEventParser,
)
from SpiffWorkflow.bpmn.parser.ProcessParser import ProcessParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser, GatewayParser, SubprocessParser
from SpiffWorkflow.bpmn.parser.TaskParser import TaskParser
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS, one
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import (
    BoundaryEvent,
    EndEvent,
    EventBasedGateway,
    ExclusiveGateway,
    InclusiveGateway,
    IntermediateCatchEvent,
    IntermediateThrowEvent,
    ParallelGateway,
    StartEvent,
)
from SpiffWorkflow.bpmn.specs.event_definitions.simple import NoneEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask as ServiceTaskMixin
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import BusinessRuleTaskParser, CamundaTaskParser, UserTaskParser
from SpiffWorkflow.camunda.specs.user_task import UserTask
from SpiffWorkflow.dmn.specs import BusinessRuleTaskMixin
from SpiffWorkflow.spiff.specs.defaults import (
    CallActivity,
    EventSubprocess,
    ManualTask,
    NoneTask,
    ParallelMultiInstanceTask,
    ReceiveTask,
    ScriptTask,
    SendTask,
    SequentialMultiInstanceTask,
    StandardLoopTask,
    SubWorkflowTask,
    TransactionSubprocess,
)
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask

from engine.bpmn import support
from engine.bpmn.expressions import camunda_to_python, is_wrapped, iso8601_literal, unquoted
from engine.bpmn.messages import MessageDefinition
from engine.bpmn.timers import clocked

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


class CrmUserTask(UserTask, SpiffBpmnTask):
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


class CrmBusinessRuleTask(BusinessRuleTaskMixin, SpiffBpmnTask):
    pass


class CrmServiceTask(ServiceTaskMixin, SpiffBpmnTask):
    """A service task: it calls nothing, and completes at once (SpiffWorkflow's own never
    completes: its run leaves it started, so the path behind it waited forever)."""

    def _run_hook(self, my_task):
        super()._run_hook(my_task)
        return True


class CrmStartEvent(StartEvent):
    """A start event; ``initiator`` names the variable that gets the user who started the instance."""

    initiator: str | None = None


class _CollectionChecked:
    """A multi-instance task whose collection must be a list (or a dict): SpiffWorkflow
    iterates whatever it finds, a string letter by letter, and lets None escape as a
    TypeError."""

    def check_collection(self, my_task) -> None:
        if self.data_input is None:
            return
        described = f"variable '{self.data_input.bpmn_id}'"
        if isinstance(self.data_input, ExpressionDataReference):
            described = f"expression {self.data_input.expression!r}"
        elif not self.data_input.exists(my_task):
            raise WorkflowDataException(
                f"The multi-instance task loops over the {described}, which is not set: set it to a list "
                "before this step (in a form, a script or the start data)", my_task)
        value = self.data_input.get(my_task)
        if not isinstance(value, (list, tuple, dict)):
            raise WorkflowDataException(
                f"The multi-instance task loops over the {described}, which holds "
                f"{type(value).__name__} {value!r}, not a list", my_task)

    def create_child(self, my_task, item, key_or_index=None):
        if self.data_output is None and self.input_item is not None:
            # Each instance's item is its own: the one a finished instance left in the loop's
            # variables must not stop the next instance from getting its item.
            my_task.data.pop(self.input_item.bpmn_id, None)
        super().create_child(my_task, item, key_or_index)


class CrmParallelMultiInstanceTask(_CollectionChecked, ParallelMultiInstanceTask):
    def create_children(self, my_task):
        self.check_collection(my_task)
        super().create_children(my_task)


class CrmSequentialMultiInstanceTask(_CollectionChecked, SequentialMultiInstanceTask):
    def init_remaining_items(self, my_task):
        self.check_collection(my_task)
        return super().init_remaining_items(my_task)


class ExpressionDataReference(TaskDataReference):
    """Camunda's ``camunda:collection="${expression}"``: the collection is what the expression
    gives when the loop begins (evaluated once, as Camunda does)."""

    def __init__(self, expression: str):
        super().__init__(expression)
        self.expression = expression

    def exists(self, my_task):
        return True

    def get(self, my_task):
        if _COLLECTION not in my_task.internal_data:
            my_task.internal_data[_COLLECTION] = my_task.workflow.script_engine.evaluate(my_task, self.expression)
        return my_task.internal_data[_COLLECTION]


_COLLECTION = "crmflow_collection"


class CrmTaskParsing(TaskParser):
    """What every task parser of crmflow does: Camunda's extension properties, both kinds of
    multi-instance loop (Camunda's collection and the standard loopDataInputRef), and the
    pre- and post-scripts."""

    STANDARD_LOOP_CLASS = StandardLoopTask
    PARALLEL_MI_CLASS = CrmParallelMultiInstanceTask
    SEQUENTIAL_MI_CLASS = CrmSequentialMultiInstanceTask
    EVENT_SUBPROCESS_CLASS = EventSubprocess

    def parse_extensions(self, node=None):
        return CamundaTaskParser.parse_extensions(self, node)

    def parse_node(self):
        parsed = super().parse_node()
        # On the loop when there is one (self.task is then the loop): once before and after all instances.
        self.task.prescript = _spiff_script(self.node, "preScript")
        self.task.postscript = _spiff_script(self.node, "postScript")
        return parsed

    def _add_multiinstance_task(self, loop_characteristics):
        collection = loop_characteristics.get(f"{{{CAMUNDA_NS}}}collection")
        if collection is None:
            # The standard loop (loopCardinality, loopDataInputRef), which Camunda's parser refuses.
            TaskParser._add_multiinstance_task(self, loop_characteristics)
        else:
            self._add_camunda_multiinstance_task(loop_characteristics, collection.strip())
        self.task.bpmn_name = self.node.get("name")  # so that its errors name the task as the diagram does

    def _add_camunda_multiinstance_task(self, loop_characteristics, collection: str):
        element = (loop_characteristics.get(f"{{{CAMUNDA_NS}}}elementVariable") or "").strip()
        condition = self.xpath("./bpmn:multiInstanceLoopCharacteristics/bpmn:completionCondition")
        source = camunda_to_python(collection)  # "${reviewers}" is the variable reviewers
        item = TaskDataReference(element) if element else None
        if source.isidentifier():
            # As SpiffWorkflow's Camunda parser has it: each instance's item is written back into
            # the collection, and the rest of an instance's variables stay with it.
            data_input = data_output = TaskDataReference(source)
        else:
            data_input, data_output = ExpressionDataReference(source), None
        original = self.spec.task_specs.pop(self.task.name)
        loop_class = (self.SEQUENTIAL_MI_CLASS if loop_characteristics.get("isSequential") == "true"
                      else self.PARALLEL_MI_CLASS)
        self.task = loop_class(
            self.spec, original.name, task_spec="", data_input=data_input, data_output=data_output,
            input_item=item, output_item=item if data_output is not None else None,
            condition=condition[0].text if condition else None, description="MultiInstance")
        self._copy_task_attrs(original, loop_characteristics)


def _spiff_script(node, tag: str) -> str | None:
    found = node.find(f"{{{BPMN_MODEL_NS}}}extensionElements/{{{SPIFF_NS}}}{tag}")
    text = found.text if found is not None else None
    return text if text and text.strip() else None


def element_properties(node) -> dict[str, str]:
    """The element's own extension properties (camunda:properties), not those of elements inside it."""
    path = f"{{{BPMN_MODEL_NS}}}extensionElements/{{{CAMUNDA_NS}}}properties/{{{CAMUNDA_NS}}}property"
    return {prop.get("name"): prop.get("value") or "" for prop in node.iterfind(path) if prop.get("name")}


class CrmUserTaskParser(CrmTaskParsing, UserTaskParser):
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


class CrmPlainTaskParser(CrmTaskParsing):
    pass


class CrmScriptTaskParser(CrmTaskParsing):
    def create_task(self):
        return self.spec_class(self.spec, self.bpmn_id, script=one(self.xpath(".//bpmn:script")).text,
                               **self.bpmn_attributes)


class CrmBusinessRuleTaskParser(CrmTaskParsing, BusinessRuleTaskParser):
    pass


class CrmSubprocessParser(CrmTaskParsing):
    def create_task(self):
        subprocess_spec = SubprocessParser.get_subprocess_spec(self)
        spec_class = self.EVENT_SUBPROCESS_CLASS if self.node.get("triggeredByEvent") == "true" else self.spec_class
        return spec_class(self.spec, self.bpmn_id, subworkflow_spec=subprocess_spec, **self.bpmn_attributes)


class CrmCallActivityParser(CrmTaskParsing):
    def create_task(self):
        return self.spec_class(self.spec, self.bpmn_id, subworkflow_spec=SubprocessParser.get_call_activity_spec(self),
                               **self.bpmn_attributes)


class EventParsing(EventDefinitionParser):
    """Timer expressions as Camunda writes them: ``PT1H``, ``R3/P1D``, ``'P14D'``,
    ``2026-12-01T09:00:00Z`` or ``${followUpDate}``, rather than Python source; timers
    that tell the time by the engine's clock; and messages between instances."""

    def parse_timer_event(self, event):
        for tag in ("timeDate", "timeDuration", "timeCycle"):
            for node in self.xpath(f".//bpmn:{tag}"):
                if node.text is not None:
                    node.text = timer_expression_to_python(node.text)
        return clocked(super().parse_timer_event(event))

    def parse_message_event(self, message_event):
        message_ref = message_event.get("messageRef")
        if not message_ref:  # a sender that names no message sends none (validation warns of it)
            return NoneEventDefinition(description="Default")
        # The message of this file: ids are unique in a file, not across the bundle.
        [message] = self.doc_xpath(f".//bpmn:message[@id='{message_ref}']")
        properties = element_properties(self.node)
        return MessageDefinition(
            message_name(message),
            correlation_key=self._correlation_key(message_ref, properties),
            time_to_live=properties.get(support.TIME_TO_LIVE, "").strip() or support.DEFAULT_TIME_TO_LIVE,
            if_nobody_waits=properties.get(support.IF_NOBODY_WAITS, "").strip().lower() or support.KEEP,
            variables=_names(properties.get(support.MESSAGE_VARIABLES)),
            description=self.get_event_description(message_event),
        )

    def _correlation_key(self, message_ref: str, properties: dict[str, str]) -> str | None:
        """The key as a Python expression: the element's correlationKey property, else the
        retrieval expression of the message's correlation property (one, validation sees to it)."""
        key = properties.get(support.CORRELATION_KEY, "").strip()
        if key:
            return camunda_to_python(key) if is_wrapped(key) else repr(key)
        retrievals = self.process_parser.parser.message_correlations.get(message_ref, [])
        return camunda_to_python(retrievals[0].retrieval_expression) if retrievals else None


def message_name(message) -> str:
    """What instances exchange the message by: its name, else its id."""
    return (message.get("name") or "").strip() or message.get("id")


def _names(text: str | None) -> tuple[str, ...] | None:
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    return names or None


def timer_expression_to_python(text: str) -> str:
    stripped = unquoted(text.strip())
    if iso8601_literal(stripped):
        return repr(stripped)
    return camunda_to_python(text.strip())


class CrmStartEventParser(EventParsing, StartEventParser):
    def create_task(self):
        task = super().create_task()
        initiator = (self.node.get(f"{{{CAMUNDA_NS}}}initiator") or "").strip()
        task.initiator = initiator or None
        return task


class CrmEndEventParser(EventParsing, EndEventParser):
    pass


class CrmIntermediateCatchEventParser(EventParsing, IntermediateCatchEventParser):
    pass


class CrmIntermediateThrowEventParser(EventParsing, IntermediateThrowEventParser):
    pass


class CrmBoundaryEventParser(EventParsing, BoundaryEventParser):
    pass


class CrmSendTaskParser(CrmTaskParsing, EventParsing, SendTaskParser):
    def create_task(self):
        return SendTaskParser.create_task(self)


class CrmReceiveTaskParser(CrmTaskParsing, EventParsing, ReceiveTaskParser):
    def create_task(self):
        return ReceiveTaskParser.create_task(self)


class CrmEventBasedGatewayParser(EventParsing, EventBasedGatewayParser):
    pass


class CrmProcessParser(ProcessParser):
    """Finds the flow elements by id among the BPMN elements only: SpiffWorkflow indexes
    every element with an id, so a vendor's extension element with a task's id could stand
    in for the task."""

    def _index_process_nodes(self):
        for node in self.xpath(".//*[@id][not(ancestor::bpmn:extensionElements)]"):
            node_id = node.get("id")
            self.nodes_by_id[node_id] = node
            tag = node.tag
            if tag == full_tag("sequenceFlow"):
                self.outgoing_sequence_flows.setdefault(node.get("sourceRef"), []).append(node)
            elif tag == full_tag("boundaryEvent"):
                self.boundary_events_by_attached.setdefault(node.get("attachedToRef"), []).append(node)
            elif tag == full_tag("dataObjectReference"):
                self.data_object_references[node_id] = node
            elif tag == full_tag("dataStoreReference"):
                self.data_store_references[node_id] = node


# The parser and step of each flow node; which of them run is engine/bpmn/support.py's to say.
_FLOW_NODES = {
    "startEvent": (CrmStartEventParser, CrmStartEvent),
    "endEvent": (CrmEndEventParser, EndEvent),
    "intermediateCatchEvent": (CrmIntermediateCatchEventParser, IntermediateCatchEvent),
    "intermediateThrowEvent": (CrmIntermediateThrowEventParser, IntermediateThrowEvent),
    "boundaryEvent": (CrmBoundaryEventParser, BoundaryEvent),
    "task": (CrmPlainTaskParser, NoneTask),
    "userTask": (CrmUserTaskParser, CrmUserTask),
    "manualTask": (CrmPlainTaskParser, ManualTask),
    "scriptTask": (CrmScriptTaskParser, ScriptTask),
    "serviceTask": (CrmPlainTaskParser, CrmServiceTask),
    "sendTask": (CrmSendTaskParser, SendTask),
    "receiveTask": (CrmReceiveTaskParser, ReceiveTask),
    "businessRuleTask": (CrmBusinessRuleTaskParser, CrmBusinessRuleTask),
    "callActivity": (CrmCallActivityParser, CallActivity),
    "subProcess": (CrmSubprocessParser, SubWorkflowTask),
    "transaction": (CrmSubprocessParser, TransactionSubprocess),
    "exclusiveGateway": (ConditionalGatewayParser, ExclusiveGateway),
    "inclusiveGateway": (ConditionalGatewayParser, InclusiveGateway),
    "parallelGateway": (GatewayParser, ParallelGateway),
    "eventBasedGateway": (CrmEventBasedGatewayParser, EventBasedGateway),
}


class CrmParser(CamundaParser):
    PARSER_CLASSES = {}
    OVERRIDE_PARSER_CLASSES = {full_tag(tag): _FLOW_NODES[tag] for tag in support.flow_nodes_that_run()}
    PROCESS_PARSER_CLASS = CrmProcessParser
