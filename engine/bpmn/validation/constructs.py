"""The checks of a process against engine/bpmn/support.py, the list of what crmflow runs: each
element, event definition and Camunda or SpiffWorkflow extension is looked up there, and
what is refused is an error, what runs without effect a warning."""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import BPMN_MODEL_NS

from engine.bpmn import support
from engine.bpmn.expressions import is_wrapped, iso8601_literal
from engine.bpmn.parser import CAMUNDA_NS, SPIFF_NS, element_properties
from engine.bpmn.support import Kind, Support
from engine.bpmn.validation.documents import (
    BundleIndex,
    Document,
    bpmn_tag,
    descendants,
    local_name,
    problem_at,
    scopes_of,
)
from engine.bpmn.validation.problems import WARNING, Problem
from engine.bpmn.validation.syntax import expression_error

_PREFIXES = {CAMUNDA_NS: "camunda", SPIFF_NS: "spiffworkflow"}
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"

# What may stand in a process or subprocess besides the flow nodes, and is part of no construct
# of its own in the list.
_PARTS = {"laneSet", "association", "property", "auditing", "monitoring", "incoming", "outgoing"}
_RESOURCE_ROLES = ("potentialOwner", "performer", "humanPerformer")
_EVENTS = ("startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent")


def check_constructs(document: Document, process: etree._Element, index: BundleIndex) -> Iterator[Problem]:
    for scope in scopes_of(process):
        for element in scope.iterchildren(f"{{{BPMN_MODEL_NS}}}*"):
            yield from _element_problems(document, element)
    for element in descendants(process, *_EVENTS, "sendTask", "receiveTask"):
        yield from _event_definition_problems(document, element)
    for element in _with_extensions(process):
        yield from _extension_problems(document, element)


def _element_problems(document: Document, element: etree._Element) -> Iterator[Problem]:
    name = local_name(element)
    construct = support.BY_NAME.get(name)
    if construct is None:
        if name not in _PARTS:
            yield problem_at(document, element, f"crmflow does not know the BPMN element {name}, so it cannot run "
                                                "it: replace it with a task, an event or a gateway crmflow supports "
                                                "(docs/bpmn-support.md).")
        return
    yield from _judged(document, element, construct)
    for part in element.iterchildren(*(bpmn_tag(tag) for tag in _RESOURCE_ROLES)):
        yield from _judged(document, element, support.BY_NAME[local_name(part)], line=part.sourceline)


def _judged(document: Document, subject: etree._Element, construct: support.Construct,
            line: int | None = None) -> Iterator[Problem]:
    if construct.support == Support.REFUSED:
        yield problem_at(document, subject, construct.how, line=line)
    elif construct.support == Support.WARNED:
        yield problem_at(document, subject, construct.how, line=line, severity=WARNING)


def _event_definitions(element: etree._Element) -> list[etree._Element]:
    return [child for child in element.iterchildren(f"{{{BPMN_MODEL_NS}}}*")
            if local_name(child).endswith("EventDefinition") or local_name(child) == "eventDefinitionRef"]


def _event_definition_problems(document: Document, element: etree._Element) -> Iterator[Problem]:
    kind = local_name(element)
    definitions = _event_definitions(element)
    for definition in definitions:
        construct = support.BY_NAME.get(local_name(definition))
        if construct is None:
            yield problem_at(document, element, f"crmflow does not know the event definition {local_name(definition)}: "
                                                "use a timer, message, signal, error, escalation, conditional, "
                                                "terminate or cancel event.", line=definition.sourceline)
        else:
            yield from _judged(document, element, construct, line=definition.sourceline)
    if kind == "boundaryEvent" and not definitions:
        yield problem_at(document, element, "A boundary event needs a trigger, and this one has none: make it a "
                                            "timer, message, error, escalation, signal, conditional or cancel "
                                            "boundary event in the modeler, or delete it.")
    messages = [d for d in definitions if local_name(d) == "messageEventDefinition"]
    if kind in ("sendTask", "receiveTask") and element.get("messageRef"):
        messages.append(element)
    sends = kind in support.MESSAGE_SENDERS
    if kind in ("sendTask", "receiveTask") and not messages:
        yield _without_message(document, element, sends)
    for message in messages:
        if not message.get("messageRef"):
            yield _without_message(document, element, sends, line=message.sourceline)
        else:
            yield from _message_problems(document, element, message.get("messageRef"), sends)


def _without_message(document: Document, element: etree._Element, sends: bool, line: int | None = None) -> Problem:
    if sends:
        return problem_at(document, element, "The element names no message, so it sends nothing and passes at once: "
                                             "choose its message in the modeler (Global message reference).",
                          line=line, severity=WARNING)
    return problem_at(document, element, "The element names no message, so it would wait forever: choose the "
                                         "message it waits for in the modeler (Global message reference).", line=line)


def _message_problems(document: Document, element: etree._Element, message_ref: str, sends: bool) -> Iterator[Problem]:
    properties = element_properties(element)
    key = properties.get(support.CORRELATION_KEY, "").strip()
    if key and is_wrapped(key):
        error = expression_error(key)
        if error:
            yield problem_at(document, element, f"The correlation key {key!r} is not a valid expression: {error}.")
    retrievals = [expression for expression in document.root.iter(bpmn_tag("correlationPropertyRetrievalExpression"))
                  if expression.get("messageRef") == message_ref]
    if not key and len(retrievals) > 1:
        yield problem_at(document, element, f"The message '{message_ref}' has {len(retrievals)} correlation properties; "
                                            "crmflow correlates a message by one key: keep one, or set the "
                                            f"element's {support.CORRELATION_KEY} extension property.")
    if not sends:
        return
    time_to_live = properties.get(support.TIME_TO_LIVE, "").strip()
    if time_to_live and not (iso8601_literal(time_to_live) and time_to_live.upper().startswith("P")):
        yield problem_at(document, element, f"The {support.TIME_TO_LIVE} {time_to_live!r} is not an ISO 8601 duration "
                                            "(such as PT1H or P7D).")
    if_nobody_waits = properties.get(support.IF_NOBODY_WAITS, "").strip().lower()
    if if_nobody_waits and if_nobody_waits not in (support.KEEP, support.FAIL):
        yield problem_at(document, element, f"The {support.IF_NOBODY_WAITS} {if_nobody_waits!r} is neither "
                                            f"'{support.KEEP}' (keep the message for {support.TIME_TO_LIVE}) nor "
                                            f"'{support.FAIL}' (fail the step that sends it).")


def _with_extensions(process: etree._Element) -> Iterator[etree._Element]:
    """The process and its BPMN elements, outside extension elements (whose own content is the vendor's)."""
    extensions = bpmn_tag("extensionElements")
    pending = [process]
    while pending:
        element = pending.pop()
        yield element
        if element.tag != extensions:
            pending.extend(element.iterchildren(f"{{{BPMN_MODEL_NS}}}*"))


def _extension_problems(document: Document, element: etree._Element) -> Iterator[Problem]:
    kind = local_name(element)
    for attribute in element.attrib:
        namespace = etree.QName(attribute).namespace
        if namespace in _PREFIXES:
            yield from _extension_problem(document, element, kind, namespace, etree.QName(attribute).localname)
    for extensions in element.iterchildren(bpmn_tag("extensionElements")):
        for extension in extensions.iterchildren(etree.Element):
            namespace = etree.QName(extension).namespace
            if namespace in _PREFIXES:
                yield from _extension_problem(document, element, kind, namespace, etree.QName(extension).localname,
                                              line=extension.sourceline)


def _extension_problem(document: Document, element: etree._Element, kind: str, namespace: str, name: str,
                       line: int | None = None) -> Iterator[Problem]:
    full_name = f"{_PREFIXES[namespace]}:{name}"
    construct = support.BY_NAME.get(full_name)
    if construct is None:
        yield problem_at(document, element, f"crmflow does not know {full_name}, so it has no effect here.",
                         line=line, severity=WARNING)
    elif construct.on and kind not in construct.on:
        yield problem_at(document, element, f"{full_name} has no effect on a {kind} in crmflow.", line=line,
                         severity=WARNING)
    elif construct.kind in (Kind.CAMUNDA, Kind.SPIFF):
        yield from _judged(document, element, construct, line=line)


def zeebe_problems(document: Document) -> Iterator[Problem]:
    """One warning for a file drawn for Camunda 8, whose extensions crmflow does not read."""
    used = [element for element in document.root.iter(etree.Element)
            if etree.QName(element).namespace == ZEEBE_NS
            or any(etree.QName(attribute).namespace == ZEEBE_NS for attribute in element.attrib)]
    if used:
        first = used[0]
        message = (f"The file uses Camunda 8 (zeebe) extensions on {len(used)} elements, such as "
                   f"{etree.QName(first).localname} on line {first.sourceline}; crmflow reads Camunda 7 extensions "
                   "only, so they have no effect.")
        yield Problem(document.file, message, line=first.sourceline, severity=WARNING)
