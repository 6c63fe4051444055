"""The checks of the documents and their processes against the BPMN/DMN schemas and
against what crmflow can run, each problem naming the file, the line and the element."""

from __future__ import annotations

import ast
import copy
from collections.abc import Iterator

from lxml import etree
from RestrictedPython import compile_restricted_exec
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS
from SpiffWorkflow.dmn.parser.BpmnDmnParser import SCHEMAS as DMN_SCHEMAS

from engine.bpmn.expressions import is_wrapped, iso8601_literal, unquoted
from engine.bpmn.parser import CAMUNDA_NS, SPIFF_NS
from engine.bpmn.validation.constructs import check_constructs, zeebe_problems
from engine.bpmn.validation.documents import (
    SUBPROCESS_TAGS,
    BundleIndex,
    Document,
    all_decisions,
    all_processes,
    bpmn_tag,
    data_object_ids,
    decisions_of,
    descendants,
    has_start_event,
    local_name,
    model_elements,
    problem_at,
    scopes_of,
)
from engine.bpmn.validation.flow import (
    check_flow_references,
    check_reachable,
    check_recursive_calls,
    warn_boundary_events_leading_nowhere,
)
from engine.bpmn.validation.problems import WARNING, Problem, display_name, known_ids_hint, shorten_namespaces
from engine.bpmn.validation.syntax import expression_error, restricted_errors, split_restricted_error

MAX_SCHEMA_PROBLEMS_PER_FILE = 20


_PYTHON_SCRIPT_FORMATS = {None, "python", "python3"}


_CONDITION_LANGUAGES = {"", "python", "juel"}


def check_documents(index: BundleIndex) -> Iterator[Problem]:
    for document in index.documents:
        yield from _schema_problems(document)
        yield from _duplicate_ids(document)
        if document.is_dmn:
            yield from _check_decisions(document)
        else:
            yield from _check_process_ids(document)
            yield from _check_data_stores(document)
            yield from zeebe_problems(document)
    yield from _duplicate_keys(index)


def _schema_problems(document: Document) -> Iterator[Problem]:
    # Schema violations are warnings: SpiffWorkflow reads elements by name, not by the schema's
    # order, so e.g. a misplaced documentation element from another modeler still runs, and
    # whatever would break a process at run time is reported as an error by the checks below.
    # Camunda's extension elements and attributes are allowed by the schema itself.
    validator = _validator_for(etree.QName(document.root).namespace)
    if validator is None:
        return
    # The validator renames elements while checking; it must not touch the tree we parse.
    checked = copy.deepcopy(document.root)
    validator.preprocess(checked)
    if validator.validator.validate(checked):
        return
    kind = "DMN" if document.is_dmn else "BPMN 2.0"
    errors = list(validator.validator.error_log)
    for error in errors[:MAX_SCHEMA_PROBLEMS_PER_FILE]:
        yield Problem(
            document.file,
            f"Does not follow the {kind} schema: {shorten_namespaces(error.message)}",
            line=error.line,
            severity=WARNING,
        )
    if len(errors) > MAX_SCHEMA_PROBLEMS_PER_FILE:
        yield Problem(
            document.file,
            f"… and {len(errors) - MAX_SCHEMA_PROBLEMS_PER_FILE} more schema violations.",
            severity=WARNING,
        )


def _validator_for(namespace: str | None) -> BpmnValidator | None:
    # A new validator each time: lxml schemas keep their error log on the instance, so sharing
    # one between threads would mix up reports; loading the XSD takes a few milliseconds.
    if namespace == BPMN_MODEL_NS:
        return BpmnValidator()
    if namespace in DMN_SCHEMAS:
        try:
            return BpmnValidator(DMN_SCHEMAS[namespace])
        except etree.XMLSchemaParseError:
            # SpiffWorkflow 3.2's DMN 1.2 schema does not load (its DI import is broken).
            return None
    return None


def _duplicate_ids(document: Document) -> Iterator[Problem]:
    for element in model_elements(document.root):
        element_id = element.get("id")
        first = document.elements.get(element_id)
        if element_id and first is not element:
            yield problem_at(
                document,
                element,
                f"The id '{element_id}' is already used by the {local_name(first)} on line "
                f"{first.sourceline}: every element needs its own id.",
            )


def _check_decisions(document: Document) -> Iterator[Problem]:
    decisions = decisions_of(document)
    if not decisions:
        yield problem_at(document, document.root, "The DMN file defines no decision.")
    elif len(decisions) > 1:
        names = ", ".join(f"'{decision.get('id')}'" for decision in decisions)
        yield problem_at(
            document,
            decisions[1],
            f"The DMN file defines {len(decisions)} decisions ({names}); crmflow reads one "
            "decision table per DMN file: put each decision in a file of its own.",
        )
    for decision in decisions:
        if decision.find(f"{{{etree.QName(decision).namespace}}}decisionTable") is None:
            yield problem_at(
                document,
                decision,
                "The decision is not a decision table; crmflow evaluates decision tables only.",
            )


def _check_process_ids(document: Document) -> Iterator[Problem]:
    if not document.children("process"):
        yield problem_at(document, document.root, "The file defines no process, so there is nothing to deploy: draw "
                                                  "the process in it (a pool or a plain diagram), or leave the file out.")
    for process in document.children("process"):
        if not process.get("id"):
            yield problem_at(document, process, "The process has no id: crmflow needs it as the process key.")


def _check_data_stores(document: Document) -> Iterator[Problem]:
    for data_store in document.children("dataStore"):
        yield problem_at(
            document,
            data_store,
            "Data stores are not supported by crmflow: keep the data in process variables, "
            "or read and write it from a service task.",
        )


def _duplicate_keys(index: BundleIndex) -> Iterator[Problem]:
    for kind, defined, elements in (
        ("process", index.processes, all_processes(index)),
        ("decision", index.decisions, all_decisions(index)),
    ):
        for document, element in elements:
            first_document, first = defined[element.get("id")]
            if first is not element and first_document is not document:
                yield problem_at(
                    document,
                    element,
                    f"The {kind} id '{element.get('id')}' is also defined in "
                    f"{first_document.file} (line {first.sourceline}): ids must be unique "
                    "across the files deployed together.",
                )


def check_processes(index: BundleIndex) -> Iterator[Problem]:
    for key in index.runnable:
        document, process = index.processes[key]
        for check in _PROCESS_CHECKS:
            yield from check(document, process, index)
    yield from _processes_not_deployed(index)


def _check_start_events(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    if not has_start_event(process):
        yield problem_at(
            document,
            process,
            "The process has no start event, so it can never be started: add a start event.",
        )
    for subprocess in descendants(process, *SUBPROCESS_TAGS):
        count = len(subprocess.findall(bpmn_tag("startEvent")))
        if count != 1:
            yield problem_at(
                document,
                subprocess,
                f"An embedded subprocess needs exactly one start event; this one has {count}.",
            )


def _check_sequence_flows(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for container in scopes_of(process):
        # A flow connects elements of the same process or subprocess: its siblings.
        siblings = {child.get("id") for child in container.iterchildren(etree.Element)}
        for flow in container.iterchildren(bpmn_tag("sequenceFlow")):
            for attribute, role in (("sourceRef", "starts at"), ("targetRef", "leads to")):
                ref = flow.get(attribute)
                if not ref:
                    yield problem_at(
                        document, flow, f"The sequence flow has no {attribute}: reconnect it in the modeler."
                    )
                elif ref not in siblings:
                    yield problem_at(
                        document,
                        flow,
                        f"The sequence flow {role} '{ref}', but there is no element with that id in the "
                        "same process or subprocess: reconnect or delete the flow in the modeler.",
                    )


def _check_business_rule_tasks(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for task in descendants(process, "businessRuleTask"):
        ref = task.get(f"{{{CAMUNDA_NS}}}decisionRef")
        if not ref:
            yield problem_at(
                document,
                task,
                "The business rule task names no decision: in Camunda Modeler set Implementation "
                "to DMN and Decision reference to the id of a decision in the bundle.",
            )
        elif ref not in index.decisions:
            yield problem_at(
                document,
                task,
                f"The business rule task uses decision '{ref}', but no DMN file in the bundle "
                f"defines it{known_ids_hint(index.decisions)}: add the DMN file or fix the decision reference.",
            )


def _check_call_activities(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for call in descendants(process, "callActivity"):
        called = call.get("calledElement")
        if not called:
            yield problem_at(
                document,
                call,
                "The call activity names no process: set Called element to the id of a process in the bundle.",
            )
        elif called not in index.processes:
            yield problem_at(
                document,
                call,
                f"The call activity calls process '{called}', but no file in the bundle defines "
                f"it{known_ids_hint(index.processes)}: add its BPMN file or fix the called element.",
            )


def _check_scripts(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for task in descendants(process, "scriptTask"):
        script_format = task.get("scriptFormat")
        script = task.find(bpmn_tag("script"))
        resource = task.get(f"{{{CAMUNDA_NS}}}resource")
        if (script_format.lower() if script_format else None) not in _PYTHON_SCRIPT_FORMATS:
            yield problem_at(
                document,
                task,
                f"The script is written in {script_format}; crmflow runs Python scripts only: "
                "set the script format to python and rewrite the script.",
            )
        elif script is None or not (script.text or "").strip():
            where = f" from the file '{resource}'" if resource else ""
            yield problem_at(
                document,
                task,
                f"The script task has no inline script{where}: crmflow runs only scripts "
                "written into the task itself.",
            )
        else:
            yield from _script_problems(document, task, script)


def _script_problems(document: Document, task: etree._Element, script: etree._Element) -> Iterator[Problem]:
    # Script line 1 is the line of the <script> tag, so line n is n - 1 lines further down.
    first_line = script.sourceline
    errors = restricted_errors(compile_restricted_exec, script.text)
    for error in errors:
        script_line, message = split_restricted_error(error)
        yield problem_at(
            document,
            task,
            f"Line {script_line} of the script: {message}.",
            line=first_line + script_line - 1,
        )
    if errors:
        return
    for statement in ast.walk(ast.parse(script.text)):
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            yield problem_at(
                document,
                task,
                f"Line {statement.lineno} of the script imports a module "
                f"({ast.unparse(statement)}): scripts run in a sandbox and cannot import modules.",
                line=first_line + statement.lineno - 1,
            )


def _check_conditions(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for flow in descendants(process, "sequenceFlow"):
        condition = flow.find(bpmn_tag("conditionExpression"))
        if condition is None or not (condition.text or "").strip():
            continue
        language = condition.get("language")
        if (language or "").lower() not in _CONDITION_LANGUAGES:
            yield problem_at(
                document,
                flow,
                f"The condition is written in {language}; crmflow evaluates ${{...}} expressions "
                "and Python expressions only.",
                line=condition.sourceline,
            )
            continue
        error = expression_error(condition.text)
        if error:
            yield problem_at(
                document,
                flow,
                f"The condition {condition.text.strip()!r} is not a valid expression: {error}.",
                line=condition.sourceline,
            )


def _check_timers(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for definition in descendants(process, "timerEventDefinition"):
        event = definition.getparent()
        # In SpiffWorkflow's order of precedence.
        times = [time for tag in ("timeDate", "timeDuration", "timeCycle") for time in definition.findall(bpmn_tag(tag))]
        text = (times[0].text or "").strip() if times else ""
        if not text:
            yield problem_at(
                document,
                event,
                "The timer has no time: set a date, a duration or a cycle, e.g. PT2H or R3/P1D.",
            )
        elif is_wrapped(text):
            # ${followUpDate} is only known at run time, but it must at least be an expression.
            error = expression_error(text)
            if error:
                yield problem_at(
                    document,
                    event,
                    f"The timer expression {text!r} is not a valid expression: {error}.",
                    line=times[0].sourceline,
                )
        elif not iso8601_literal(unquoted(text)):
            cron = " Cron expressions are not supported." if len(text.split()) >= 5 else ""
            yield problem_at(
                document,
                event,
                f"The timer {text!r} is not an ISO 8601 date, duration or cycle "
                f"(such as 2026-12-01T09:00:00Z, PT2H, P2D or R3/P1D).{cron} "
                "For a time computed by the process, write ${variable}.",
                line=times[0].sourceline,
            )


def _check_data_associations(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for container in scopes_of(process):
        # SpiffWorkflow looks for a task's data objects in its own (sub)process and the one
        # directly around it, and loops forever when they are in neither: refuse such files.
        visible = data_object_ids(container)
        if container is not process:
            visible |= data_object_ids(container.getparent())
        for association in container.iterfind(f"*/{bpmn_tag('dataInputAssociation')}"):
            yield from _data_reference_problems(document, association, "sourceRef", visible)
        for association in container.iterfind(f"*/{bpmn_tag('dataOutputAssociation')}"):
            yield from _data_reference_problems(document, association, "targetRef", visible)


def _data_reference_problems(
    document: Document, association: etree._Element, end: str, visible: set[str]
) -> Iterator[Problem]:
    task = association.getparent()
    for ref in association.iterchildren(bpmn_tag(end)):
        message = _data_reference_problem(document, (ref.text or "").strip(), end == "sourceRef", visible)
        if message:
            yield problem_at(document, task, message, line=ref.sourceline)


def _data_reference_problem(document: Document, ref_id: str, reads: bool, visible: set[str]) -> str | None:
    target = document.elements.get(ref_id)
    kind = local_name(target) if target is not None else None
    uses = "Reads" if reads else "Writes"
    if kind == "dataStoreReference":
        return (
            f"{uses} the data store '{display_name(target) or ref_id}', but data stores are not "
            "supported by crmflow: use process variables instead."
        )
    if kind != "dataObjectReference":
        return (
            f"{uses} '{ref_id}', which is not a data object reference: connect the data "
            "association to a data object in the modeler."
        )
    if target.get("dataObjectRef") not in visible:
        return (
            f"{uses} the data object '{target.get('dataObjectRef')}', which is defined neither in "
            "this process or subprocess nor in the one directly around it: move the data object "
            "there in the modeler."
        )
    return None


# What an event definition (or a send/receive task) points to, and what it must point to.
_EVENT_REFERENCES = {
    "messageEventDefinition": ("messageRef", "message"),
    "signalEventDefinition": ("signalRef", "signal"),
    "errorEventDefinition": ("errorRef", "error"),
    "escalationEventDefinition": ("escalationRef", "escalation"),
    "sendTask": ("messageRef", "message"),
    "receiveTask": ("messageRef", "message"),
}


def _check_event_references(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for element in descendants(process, *_EVENT_REFERENCES):
        attribute, kind = _EVENT_REFERENCES[local_name(element)]
        ref = element.get(attribute)
        target = document.elements.get(ref) if ref else None
        if ref and (target is None or local_name(target) != kind):
            subject = element.getparent() if local_name(element).endswith("EventDefinition") else element
            yield problem_at(
                document,
                subject,
                f"Refers to the {kind} '{ref}', which this file does not define: choose one of the "
                f"file's {kind}s in the modeler, or create it.",
                line=element.sourceline,
            )


def _check_user_task_values(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    # What becomes of these at run time: engine/runtime/assignment.py.
    for task in descendants(process, "userTask"):
        for name in ("assignee", "candidateUsers", "candidateGroups", "dueDate", "priority"):
            raw = (task.get(f"{{{CAMUNDA_NS}}}{name}") or "").strip()
            message = _user_task_value_problem(name, raw) if raw else None
            if message:
                yield problem_at(document, task, message)


def _user_task_value_problem(name: str, raw: str) -> str | None:
    if is_wrapped(raw):
        error = expression_error(raw)
        return f"camunda:{name} {raw!r} is not a valid expression: {error}." if error else None
    if "${" in raw or "#{" in raw:
        return (f"camunda:{name} {raw!r} mixes text and an expression: write either names (ann, bob) or one "
                "expression that gives them, such as ${reviewers}.")
    if name == "dueDate" and not iso8601_literal(unquoted(raw)):
        return (f"camunda:dueDate {raw!r} is neither an ISO 8601 duration (P2D, PT4H) nor a date-time "
                "(2026-12-01T09:00:00Z): write one of these, or ${variable} for a deadline the process computes.")
    if name == "priority" and not raw.lstrip("+-").isdigit():
        return (f"camunda:priority {raw!r} is not a whole number: write a number such as 70 (the default is 50), "
                "or ${variable}.")
    return None


def _check_multi_instance_loops(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for loop in descendants(process, "multiInstanceLoopCharacteristics"):
        task = loop.getparent()
        collection = (loop.get(f"{{{CAMUNDA_NS}}}collection") or "").strip()
        cardinality = loop.find(bpmn_tag("loopCardinality"))
        data_input = loop.find(bpmn_tag("loopDataInputRef"))
        sources = [source for source in (collection or None, cardinality, data_input) if source is not None]
        if not sources:
            yield problem_at(document, task, "The multi-instance task says neither what to loop over nor how often: "
                                             "set a collection (camunda:collection, or a loop data input with its "
                                             "input data item) or a loop cardinality.", line=loop.sourceline)
        elif len(sources) > 1:
            yield problem_at(document, task, "The multi-instance task has more than one of a collection, a loop data "
                                             "input and a loop cardinality: keep one.", line=loop.sourceline)
        expressions = [("collection", collection if is_wrapped(collection) else "", loop.sourceline)]
        for tag in ("loopCardinality", "completionCondition"):
            node = loop.find(bpmn_tag(tag))
            if node is not None:
                expressions.append((tag, (node.text or "").strip(), node.sourceline))
        for what, text, line in expressions:
            error = expression_error(text) if text else None
            if error:
                yield problem_at(document, task, f"The multi-instance {what} {text!r} is not a valid expression: "
                                                 f"{error}.", line=line)


def _check_task_scripts(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    """SpiffArena's spiffworkflow:preScript and postScript, checked as script tasks' scripts are."""
    for extensions in descendants(process, "extensionElements"):
        for script in extensions.iterchildren(f"{{{SPIFF_NS}}}preScript", f"{{{SPIFF_NS}}}postScript"):
            if (script.text or "").strip():
                yield from _script_problems(document, extensions.getparent(), script)


def _check_initiators(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    for event in process.iterchildren(bpmn_tag("startEvent")):
        initiator = (event.get(f"{{{CAMUNDA_NS}}}initiator") or "").strip()
        if initiator and not initiator.isidentifier():
            yield problem_at(document, event, f"camunda:initiator {initiator!r} is not a variable name: write a name "
                                              "such as initiator or requester, without spaces.")


def _warn_unowned_user_tasks(
    document: Document, process: etree._Element, index: BundleIndex
) -> Iterator[Problem]:
    in_named_lane = {
        (ref.text or "").strip()
        for lane in document.root.iter(bpmn_tag("lane"))
        if lane.get("name")
        for ref in lane.findall(bpmn_tag("flowNodeRef"))
    }
    owners = ("assignee", "candidateUsers", "candidateGroups")
    for task in descendants(process, "userTask"):
        has_owner = any((task.get(f"{{{CAMUNDA_NS}}}{owner}") or "").strip() for owner in owners)
        if not has_owner and task.get("id") not in in_named_lane:
            yield problem_at(
                document,
                task,
                "Nobody would own this work item: set an assignee, candidate users or candidate "
                "groups, or put the task in a named lane.",
                severity=WARNING,
            )


_PROCESS_CHECKS = (
    check_constructs,
    _check_start_events,
    _check_sequence_flows,
    check_flow_references,
    check_reachable,
    warn_boundary_events_leading_nowhere,
    check_recursive_calls,
    _check_business_rule_tasks,
    _check_call_activities,
    _check_scripts,
    _check_conditions,
    _check_timers,
    _check_data_associations,
    _check_event_references,
    _check_user_task_values,
    _check_multi_instance_loops,
    _check_task_scripts,
    _check_initiators,
    _warn_unowned_user_tasks,
)


def _processes_not_deployed(index: BundleIndex) -> Iterator[Problem]:
    for document in index.documents:
        if document.is_dmn:
            continue
        for process in document.children("process"):
            if process.get("id") in index.runnable:
                continue
            if process.get("isExecutable") == "false":
                why = ("it is not executable (isExecutable=\"false\"): tick Executable in the modeler to deploy it, "
                       "or call it from a process that is")
            elif process.get("isExecutable") is None and any(p.get("isExecutable") for p in document.children("process")):
                why = ("another process of the file is marked executable and this one is not: mark it executable "
                       "to deploy it")
            else:
                why = "it has no start event: add one to deploy it"
            yield problem_at(document, process, f"crmflow checks this process but does not deploy it: {why}.",
                             severity=WARNING)
