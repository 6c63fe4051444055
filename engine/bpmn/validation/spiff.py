"""SpiffWorkflow builds the process specs of the files the checks found nothing wrong
with; what it still refuses is explained in the designer's words."""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

from engine.bpmn.parser import CrmParser
from engine.bpmn.validation.documents import BundleIndex, Document, decisions_of, problem_at, short_tag
from engine.bpmn.validation.problems import Problem


@dataclass
class ProcessModel:
    """One executable process found in a bundle."""

    key: str
    name: str | None
    spec: BpmnProcessSpec
    subprocess_specs: dict


def spiff_parser(
    documents: list[Document], index: BundleIndex
) -> tuple[CrmParser, set[str], list[Problem]]:
    """Hand the already parsed (and checked) trees to SpiffWorkflow, so it never reads the text."""
    parser, added, problems = CrmParser(), set(), []
    for document in documents:
        try:
            if document.is_dmn:
                parser.add_dmn_xml(document.root, document.file)
                parser.dmn_parsers[decisions_of(document)[0].get("id")].parse()
            else:
                parser.add_bpmn_xml(document.root.getroottree(), document.file)
        except Exception as error:  # SpiffWorkflow lets KeyError & co. escape from bad files
            problems.append(_explain_failure(error, index, document))
        else:
            added.add(document.file)
    for key in index.runnable:
        if index.processes[key][0].file in added:
            # Our rule for what runs, not SpiffWorkflow's reading of isExecutable, decides.
            parser.process_parsers[key].process_executable = True
    return parser, added, problems


def parse_processes(
    parser: CrmParser, added: set[str], index: BundleIndex
) -> tuple[dict[str, ProcessModel], list[Problem]]:
    processes, problems = {}, []
    for key in index.deployable:
        if not index.files_needed_by(key) <= added:
            continue
        document, process = index.processes[key]
        try:
            spec = parser.get_spec(key)
            subprocess_specs = parser.get_subprocess_specs(key)
        except Exception as error:  # any failure inside SpiffWorkflow becomes a Problem
            problems.append(_explain_failure(error, index, document))
        else:
            processes[key] = ProcessModel(key, process.get("name"), spec, subprocess_specs)
    return processes, problems


# SpiffWorkflow messages that do not tell a designer what to do.
_FRIENDLIER = {
    "Non-default exclusive outgoing sequence flow without condition": (
        "The sequence flow leaves a gateway without a condition and is not the gateway's default "
        "flow: add a condition or make it the default flow."
    ),
    "Multiple outgoing flows are not supported for tasks of type": (
        "The element has several outgoing sequence flows, but crmflow does not split the flow "
        "implicitly: add a parallel gateway after it (or an exclusive gateway with conditions)."
    ),
    "There is no support implemented for this task type": "The element is not supported by crmflow.",
    "A SubWorkflow Must contain an End event": "An embedded subprocess needs at least one end event.",
}


def _explain_failure(error: Exception, index: BundleIndex, fallback: Document) -> Problem:
    if isinstance(error, ValidationException):
        document = index.document_named(error.file_name) or fallback
        element = document.elements.get(error.id) if error.id else None
        message = _validation_message(error)
        if element is None:
            element_type = short_tag(error.tag) or None
            return Problem(document.file, message, element_id=error.id or None, element_type=element_type)
        return problem_at(document, element, message)
    element = _node_being_parsed(error)
    document = (index.document_of(element) if element is not None else None) or fallback
    message = f"crmflow could not read this element: {_describe_internal_error(error)}."
    if element is None:
        return Problem(document.file, message)
    return problem_at(document, element, message)


def _validation_message(error: ValidationException) -> str:
    text = str(error.args[0]) if error.args else ""
    cause = error.__context__
    # TaskParser wraps any exception as ValidationException(repr(exception)).
    if cause is not None and text == repr(cause):
        return f"crmflow could not read this element: {_describe_internal_error(cause)}."
    for prefix, friendly in _FRIENDLIER.items():
        if text.startswith(prefix):
            return friendly
    return re.sub(r"\.{2,}", ".", " ".join(text.split()))


def _describe_internal_error(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return f"the required attribute or reference {short_tag(str(error.args[0]))} is missing"
    if isinstance(error, NotImplementedError):
        return "it uses a form of this element that crmflow does not support"
    if isinstance(error, RecursionError):
        return "the chain of steps that follows it is too long; split the process with call activities"
    detail = " ".join(str(error).split())
    return f"it has an unexpected form ({detail})" if detail else "it has an unexpected form"


def _node_being_parsed(error: BaseException) -> etree._Element | None:
    """SpiffWorkflow's parsers let raw exceptions escape without saying where they were; the
    innermost parser frame on the traceback still holds the XML element it was reading."""
    for frame, _ in reversed(list(traceback.walk_tb(error.__traceback__))):
        for candidate in (frame.f_locals.get("node"), getattr(frame.f_locals.get("self"), "node", None)):
            if isinstance(candidate, etree._Element) and candidate.get("id"):
                return candidate
    return None
