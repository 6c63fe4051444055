"""What crmflow does with each BPMN construct: the one list that the validator checks files
against, that the parser builds its element parsers from (engine/bpmn/parser.py), and that
docs/bpmn-support.md's table is generated from (``python -m engine.bpmn.support docs/bpmn-support.md``).

Every construct either runs, or has no effect on a run and says so, or is refused when the
file is validated. ``how`` is what crmflow does with it, or, for a construct that is
refused or runs without effect, the message the designer reads: what to do instead.
"""

from __future__ import annotations

import enum
import sys
from dataclasses import dataclass


class Support(enum.StrEnum):
    RUNS = "runs"
    # Accepted and without effect on a run: diagram layout, documentation, another
    # engine's tuning. Validation says nothing about it.
    IGNORED = "ignored"
    # The element runs, but this part of it has no effect in crmflow: validation warns.
    WARNED = "warned"
    REFUSED = "refused"


class Kind(enum.StrEnum):
    FLOW_NODE = "flow node"
    EVENT_DEFINITION = "event definition"
    ELEMENT = "element"  # other BPMN elements: flows, data, lanes, definitions
    CAMUNDA = "Camunda extension"
    SPIFF = "SpiffWorkflow extension"


@dataclass(frozen=True)
class Construct:
    name: str  # "userTask", "timerEventDefinition", "camunda:assignee", "spiffworkflow:preScript"
    kind: Kind
    support: Support
    how: str
    on: tuple[str, ...] = ()  # for extensions: the elements they belong to (empty: any element)


_TASKS = ("task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
          "businessRuleTask", "callActivity", "subProcess", "transaction")
_JAVA = ("crmflow runs no Java code, delegate expressions, connectors or external task workers: "
         "the step completes at once without doing anything. Do the work in a script task, a user "
         "task, or outside crmflow.")

CONSTRUCTS: tuple[Construct, ...] = (
    # -- flow nodes ----------------------------------------------------------------------
    Construct("startEvent", Kind.FLOW_NODE, Support.RUNS,
              "Starts the process: plain, timer, message (a message of that name starts an instance "
              "when no instance waits for it), signal or conditional."),
    Construct("endEvent", Kind.FLOW_NODE, Support.RUNS,
              "Ends its path: plain, terminate, error, escalation, cancel (in a transaction), or "
              "message (publishes the message, see docs/bpmn-support.md#messages)."),
    Construct("intermediateCatchEvent", Kind.FLOW_NODE, Support.RUNS,
              "Waits for a timer, a message from another instance, a signal of the same instance, or a "
              "condition."),
    Construct("intermediateThrowEvent", Kind.FLOW_NODE, Support.RUNS,
              "Passes at once; with a message it publishes the message to other instances, with a signal "
              "or an escalation it throws it inside the instance."),
    Construct("boundaryEvent", Kind.FLOW_NODE, Support.RUNS,
              "Interrupts or branches off the task it is attached to: timer, message, error, escalation, "
              "signal, conditional or cancel. It needs one of these definitions."),
    Construct("task", Kind.FLOW_NODE, Support.RUNS, "Completes at once."),
    Construct("userTask", Kind.FLOW_NODE, Support.RUNS,
              "A work item with an owner, candidates, a deadline, a priority and the form of camunda:formData."),
    Construct("manualTask", Kind.FLOW_NODE, Support.RUNS, "A work item without a form."),
    Construct("scriptTask", Kind.FLOW_NODE, Support.RUNS,
              "Runs its inline Python script in the sandbox (scriptFormat python, or none)."),
    Construct("serviceTask", Kind.FLOW_NODE, Support.RUNS,
              "Completes at once: crmflow calls no services from a diagram (camunda:class and its kin are "
              "reported as warnings)."),
    Construct("sendTask", Kind.FLOW_NODE, Support.RUNS,
              "Publishes the message of its messageRef to other instances; without a message it completes "
              "at once (warning)."),
    Construct("receiveTask", Kind.FLOW_NODE, Support.RUNS,
              "Waits for the message of its messageRef from another instance; it needs a message."),
    Construct("businessRuleTask", Kind.FLOW_NODE, Support.RUNS,
              "Evaluates the DMN decision table of camunda:decisionRef from a DMN file of the bundle."),
    Construct("callActivity", Kind.FLOW_NODE, Support.RUNS,
              "Runs the process of calledElement (from any file of the bundle) with the caller's variables; "
              "recursive calls are refused."),
    Construct("subProcess", Kind.FLOW_NODE, Support.RUNS,
              "An embedded subprocess with exactly one start event; with triggeredByEvent=\"true\" an event "
              "subprocess."),
    Construct("transaction", Kind.FLOW_NODE, Support.RUNS, "A subprocess that a cancel end event can cancel."),
    Construct("exclusiveGateway", Kind.FLOW_NODE, Support.RUNS,
              "Takes the first flow whose condition holds, else its default flow."),
    Construct("inclusiveGateway", Kind.FLOW_NODE, Support.RUNS,
              "Takes every flow whose condition holds, else its default flow."),
    Construct("parallelGateway", Kind.FLOW_NODE, Support.RUNS, "Splits into all flows; joins by waiting for all."),
    Construct("eventBasedGateway", Kind.FLOW_NODE, Support.RUNS, "Waits for whichever following event comes first."),
    Construct("complexGateway", Kind.FLOW_NODE, Support.REFUSED,
              "Complex gateways are not supported by crmflow: use an inclusive or exclusive gateway with "
              "conditions."),
    Construct("adHocSubProcess", Kind.FLOW_NODE, Support.REFUSED,
              "Ad-hoc subprocesses are not supported by crmflow: model the steps with gateways, or as "
              "separate user tasks."),
    # -- event definitions -----------------------------------------------------------------
    Construct("timerEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "timeDate, timeDuration or timeCycle: ISO 8601 (P2D, PT4H, R3/P1D, 2026-12-01T09:00:00Z), "
              "quoted or not, or ${expression}; on the engine's clock. Cron expressions are refused."),
    Construct("messageEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "Messages between instances, by the message's name and a correlation key "
              "(docs/bpmn-support.md#messages)."),
    Construct("signalEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "Thrown and caught inside one instance; other instances do not hear signals."),
    Construct("errorEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "An error end event ends its subprocess or call activity and its error boundary event catches it."),
    Construct("escalationEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "Thrown and caught inside one instance."),
    Construct("terminateEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS, "Ends the whole (sub)process."),
    Construct("cancelEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS, "Cancels the transaction it ends."),
    Construct("conditionalEventDefinition", Kind.EVENT_DEFINITION, Support.RUNS,
              "Fires when its condition holds, checked whenever the instance takes a step."),
    Construct("compensateEventDefinition", Kind.EVENT_DEFINITION, Support.REFUSED,
              "Compensation events are not supported by crmflow: model the steps that undo the work explicitly."),
    Construct("linkEventDefinition", Kind.EVENT_DEFINITION, Support.REFUSED,
              "Link events are not supported by crmflow: connect the two parts of the diagram with a sequence "
              "flow."),
    # -- other elements ----------------------------------------------------------------------
    Construct("process", Kind.ELEMENT, Support.RUNS,
              "Deployed as a process when isExecutable=\"true\" (or, in a file where no process says, when it "
              "has a start event); isExecutable=\"false\" is validated, and runs only when another process "
              "calls it."),
    Construct("sequenceFlow", Kind.ELEMENT, Support.RUNS,
              "conditionExpression in ${JUEL} or Python; every flow node's incoming and outgoing must name "
              "flows that exist."),
    Construct("multiInstanceLoopCharacteristics", Kind.ELEMENT, Support.RUNS,
              "loopCardinality, loopDataInputRef with inputDataItem (and loopDataOutputRef with "
              "outputDataItem), or camunda:collection with camunda:elementVariable; completionCondition; "
              "isSequential. A collection that is missing or not a list stops the step with a clear error."),
    Construct("standardLoopCharacteristics", Kind.ELEMENT, Support.RUNS, "loopCondition and loopMaximum."),
    Construct("message", Kind.ELEMENT, Support.RUNS, "Its name is what instances exchange messages by."),
    Construct("signal", Kind.ELEMENT, Support.RUNS, "Named by signal events."),
    Construct("error", Kind.ELEMENT, Support.RUNS, "Named by error events (errorCode)."),
    Construct("escalation", Kind.ELEMENT, Support.RUNS, "Named by escalation events (escalationCode)."),
    Construct("correlationProperty", Kind.ELEMENT, Support.RUNS,
              "Its retrieval expression for a message is that message's correlation key, unless the element "
              "sets a correlationKey property."),
    Construct("lane", Kind.ELEMENT, Support.RUNS,
              "Its name is the candidate group of the user tasks in it that name no owner."),
    Construct("dataObject", Kind.ELEMENT, Support.RUNS, "A process variable of its id."),
    Construct("dataObjectReference", Kind.ELEMENT, Support.RUNS, "Reads and writes its data object."),
    Construct("ioSpecification", Kind.ELEMENT, Support.RUNS, "A task's data inputs and outputs, by variable name."),
    Construct("dataStore", Kind.ELEMENT, Support.REFUSED,
              "Data stores are not supported by crmflow: keep the data in process variables, or read and write "
              "it from a service task."),
    Construct("dataStoreReference", Kind.ELEMENT, Support.REFUSED,
              "Data stores are not supported by crmflow: keep the data in process variables."),
    Construct("potentialOwner", Kind.ELEMENT, Support.WARNED,
              "crmflow does not read BPMN resource assignments (potentialOwner, performer): set camunda:assignee "
              "or camunda:candidateGroups, or put the task in a named lane."),
    Construct("performer", Kind.ELEMENT, Support.WARNED,
              "crmflow does not read BPMN resource assignments (potentialOwner, performer): set camunda:assignee "
              "or camunda:candidateGroups, or put the task in a named lane."),
    Construct("humanPerformer", Kind.ELEMENT, Support.WARNED,
              "crmflow does not read BPMN resource assignments (potentialOwner, performer): set camunda:assignee "
              "or camunda:candidateGroups, or put the task in a named lane."),
    Construct("collaboration", Kind.ELEMENT, Support.IGNORED,
              "Pools and message flows are drawing: each pool's process is deployed on its own, and messages "
              "find their receivers by name."),
    Construct("documentation", Kind.ELEMENT, Support.IGNORED, "Shown to nobody at run time."),
    Construct("textAnnotation", Kind.ELEMENT, Support.IGNORED, "Drawing only."),
    Construct("group", Kind.ELEMENT, Support.IGNORED, "Drawing only."),
    Construct("BPMNDiagram", Kind.ELEMENT, Support.IGNORED, "The layout; the web UI draws it."),
    Construct("extensionElements", Kind.ELEMENT, Support.IGNORED,
              "Read for the Camunda and SpiffWorkflow extensions below; other vendors' content is ignored."),
    # -- Camunda 7 extensions ----------------------------------------------------------------
    Construct("camunda:assignee", Kind.CAMUNDA, Support.RUNS,
              "The work item's owner: a user name or ${expression}; the expression is checked when the file "
              "is validated.", on=("userTask",)),
    Construct("camunda:candidateUsers", Kind.CAMUNDA, Support.RUNS,
              "Who may claim the item: names separated by commas, or ${expression}.", on=("userTask",)),
    Construct("camunda:candidateGroups", Kind.CAMUNDA, Support.RUNS,
              "Groups whose members may claim the item: names separated by commas, or ${expression}.",
              on=("userTask",)),
    Construct("camunda:dueDate", Kind.CAMUNDA, Support.RUNS,
              "The deadline: an ISO 8601 duration or date-time, or ${expression}; a literal that is neither is "
              "refused.", on=("userTask",)),
    Construct("camunda:priority", Kind.CAMUNDA, Support.RUNS,
              "A whole number or ${expression}; a literal that is no whole number is refused.", on=("userTask",)),
    Construct("camunda:formData", Kind.CAMUNDA, Support.RUNS,
              "The form: string, long, boolean, date and enum fields with their validation.",
              on=("userTask", "startEvent")),
    Construct("camunda:formKey", Kind.CAMUNDA, Support.IGNORED,
              "crmflow draws the form from camunda:formData; an embedded or external form is not shown.",
              on=("userTask", "startEvent")),
    Construct("camunda:properties", Kind.CAMUNDA, Support.RUNS,
              "Extension properties: stage (a user task's stage); correlationKey, messageTimeToLive, "
              "ifNobodyWaits and messageVariables (messages)."),
    Construct("camunda:initiator", Kind.CAMUNDA, Support.RUNS,
              "The variable that holds the user who started the instance.", on=("startEvent",)),
    Construct("camunda:decisionRef", Kind.CAMUNDA, Support.RUNS, "The DMN decision to evaluate.",
              on=("businessRuleTask",)),
    Construct("camunda:resultVariable", Kind.CAMUNDA, Support.IGNORED,
              "The decision's outputs become variables of their own names.", on=("businessRuleTask",)),
    Construct("camunda:collection", Kind.CAMUNDA, Support.RUNS,
              "The list a multi-instance task runs once per item of: a variable name or ${expression}.",
              on=("multiInstanceLoopCharacteristics",)),
    Construct("camunda:elementVariable", Kind.CAMUNDA, Support.RUNS,
              "The variable that holds each instance's item.", on=("multiInstanceLoopCharacteristics",)),
    Construct("camunda:class", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:delegateExpression", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:expression", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:type", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:topic", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:connector", Kind.CAMUNDA, Support.WARNED, _JAVA),
    Construct("camunda:resource", Kind.CAMUNDA, Support.IGNORED,
              "crmflow runs the script written into the task; one in another file is refused.", on=("scriptTask",)),
    Construct("camunda:field", Kind.CAMUNDA, Support.IGNORED, "Configures a Java delegate, which crmflow does not run."),
    Construct("camunda:inputOutput", Kind.CAMUNDA, Support.WARNED,
              "crmflow does not map input and output parameters: the element sees and changes the instance's "
              "variables directly. Set the values in a script task before or after it."),
    Construct("camunda:in", Kind.CAMUNDA, Support.WARNED,
              "crmflow does not map call activity variables: the called process gets all of the caller's "
              "variables and returns all of its own.", on=("callActivity",)),
    Construct("camunda:out", Kind.CAMUNDA, Support.WARNED,
              "crmflow does not map call activity variables: the called process gets all of the caller's "
              "variables and returns all of its own.", on=("callActivity",)),
    Construct("camunda:executionListener", Kind.CAMUNDA, Support.WARNED,
              "crmflow does not run execution listeners: put the work in a script task, or in "
              "spiffworkflow:preScript / postScript."),
    Construct("camunda:taskListener", Kind.CAMUNDA, Support.WARNED,
              "crmflow does not run task listeners: put the work in a script task, or in "
              "spiffworkflow:preScript / postScript."),
    Construct("camunda:asyncBefore", Kind.CAMUNDA, Support.IGNORED, "Every step is one transaction anyway."),
    Construct("camunda:asyncAfter", Kind.CAMUNDA, Support.IGNORED, "Every step is one transaction anyway."),
    Construct("camunda:async", Kind.CAMUNDA, Support.IGNORED, "Every step is one transaction anyway."),
    Construct("camunda:exclusive", Kind.CAMUNDA, Support.IGNORED, "Every step is one transaction anyway."),
    Construct("camunda:jobPriority", Kind.CAMUNDA, Support.IGNORED, "Camunda's job executor tuning."),
    Construct("camunda:failedJobRetryTimeCycle", Kind.CAMUNDA, Support.IGNORED, "Camunda's job executor tuning."),
    Construct("camunda:historyTimeToLive", Kind.CAMUNDA, Support.IGNORED, "crmflow keeps the whole history."),
    Construct("camunda:versionTag", Kind.CAMUNDA, Support.IGNORED, "crmflow numbers the versions it deploys."),
    Construct("camunda:isStartableInTasklist", Kind.CAMUNDA, Support.IGNORED, "Camunda's task list."),
    Construct("camunda:candidateStarterGroups", Kind.CAMUNDA, Support.IGNORED, "Camunda's task list."),
    Construct("camunda:candidateStarterUsers", Kind.CAMUNDA, Support.IGNORED, "Camunda's task list."),
    Construct("camunda:calledElementBinding", Kind.CAMUNDA, Support.IGNORED,
              "A call activity runs the version of the called process deployed with its caller.",
              on=("callActivity",)),
    Construct("camunda:calledElementVersion", Kind.CAMUNDA, Support.IGNORED,
              "A call activity runs the version of the called process deployed with its caller.",
              on=("callActivity",)),
    Construct("camunda:calledElementTenantId", Kind.CAMUNDA, Support.IGNORED, "crmflow has no tenants.",
              on=("callActivity",)),
    Construct("camunda:diagramRelationId", Kind.CAMUNDA, Support.IGNORED, "Camunda Modeler's own bookkeeping."),
    # -- SpiffWorkflow (SpiffArena) extensions ------------------------------------------------
    Construct("spiffworkflow:preScript", Kind.SPIFF, Support.RUNS,
              "A Python script run when the task becomes ready (once before all instances of a "
              "multi-instance task).", on=_TASKS),
    Construct("spiffworkflow:postScript", Kind.SPIFF, Support.RUNS,
              "A Python script run when the task completes (once after all instances of a multi-instance "
              "task).", on=_TASKS),
)

BY_NAME = {construct.name: construct for construct in CONSTRUCTS}

# The extension properties of messages (camunda:properties on the sending or receiving element).
CORRELATION_KEY = "correlationKey"
TIME_TO_LIVE = "messageTimeToLive"
IF_NOBODY_WAITS = "ifNobodyWaits"
MESSAGE_VARIABLES = "messageVariables"
KEEP, FAIL = "keep", "fail"
DEFAULT_TIME_TO_LIVE = "P1D"
# The elements that send a message when they have one.
MESSAGE_SENDERS = ("intermediateThrowEvent", "endEvent", "sendTask")


def flow_nodes_that_run() -> list[str]:
    """The flow node elements the parser builds a step for."""
    return [c.name for c in CONSTRUCTS if c.kind == Kind.FLOW_NODE and c.support != Support.REFUSED]


def markdown_table() -> str:
    lines = ["| construct | kind | crmflow | how |", "| --- | --- | --- | --- |"]
    for construct in CONSTRUCTS:
        on = f" (on {', '.join(construct.on)})" if construct.on else ""
        how = construct.how.replace("|", "\\|")
        lines.append(f"| `{construct.name}`{on} | {construct.kind} | {construct.support} | {how} |")
    return "\n".join(lines)


BEGIN_TABLE = "<!-- constructs: generated by python -m engine.bpmn.support docs/bpmn-support.md -->"
END_TABLE = "<!-- end of constructs -->"


def with_table(document: str) -> str:
    """The document with the table between its markers replaced by the current one."""
    before, rest = document.split(BEGIN_TABLE, 1)
    _, after = rest.split(END_TABLE, 1)
    return f"{before}{BEGIN_TABLE}\n{markdown_table()}\n{END_TABLE}{after}"


if __name__ == "__main__":
    path = sys.argv[1]
    with open(path, encoding="utf-8") as source:
        text = source.read()
    with open(path, "w", encoding="utf-8") as target:
        target.write(with_table(text))
