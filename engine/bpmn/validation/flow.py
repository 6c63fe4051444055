"""The checks of how a process hangs together: every path a designer drew is a path that runs.

SpiffWorkflow follows the sequence flows' sourceRef and targetRef and never reads a flow
node's ``<incoming>``/``<outgoing>``, so a flow that was lost while editing cuts off the path
behind it without a word; an element no path reaches never runs; a call activity that ends up
calling its own process nests instances forever.
"""

from __future__ import annotations

from collections.abc import Iterator

from lxml import etree

from engine.bpmn import support
from engine.bpmn.validation.documents import (
    BundleIndex,
    Document,
    bpmn_tag,
    called_elements,
    descendants,
    local_name,
    problem_at,
    scopes_of,
)
from engine.bpmn.validation.problems import WARNING, Problem


def _flow_nodes(scope: etree._Element) -> list[etree._Element]:
    return [child for child in scope.iterchildren(etree.Element)
            if child.tag == bpmn_tag(local_name(child))
            and getattr(support.BY_NAME.get(local_name(child)), "kind", None) == support.Kind.FLOW_NODE]


def check_flow_references(document: Document, process: etree._Element, index: BundleIndex) -> Iterator[Problem]:
    for scope in scopes_of(process):
        flows = {flow.get("id"): flow for flow in scope.iterchildren(bpmn_tag("sequenceFlow"))}
        nodes = {node.get("id") for node in _flow_nodes(scope)}
        for node in _flow_nodes(scope):
            for direction, end, role in (("outgoing", "sourceRef", "starts at"), ("incoming", "targetRef", "leads to")):
                for reference in node.iterchildren(bpmn_tag(direction)):
                    flow_id = (reference.text or "").strip()
                    flow = flows.get(flow_id)
                    if flow is None:
                        yield problem_at(
                            document, node,
                            f"The element lists the {direction} sequence flow '{flow_id}', but there is no sequence "
                            "flow with that id in its process or subprocess, so the path through it would never "
                            "run: reconnect the element in the modeler.",
                            line=reference.sourceline)
                    # A flow whose end is no element of the scope is reported as the flow's problem.
                    elif flow.get(end) != node.get("id") and flow.get(end) in nodes:
                        yield problem_at(
                            document, node,
                            f"The element lists the {direction} sequence flow '{flow_id}', but that flow {role} "
                            f"'{flow.get(end)}': reconnect the element and the flow in the modeler.",
                            line=reference.sourceline)


def check_reachable(document: Document, process: etree._Element, index: BundleIndex) -> Iterator[Problem]:
    for scope in scopes_of(process):
        nodes = {node.get("id"): node for node in _flow_nodes(scope) if node.get("id")}
        if _broken_references(scope, nodes):
            # What a broken flow cuts off follows from it: the designer is told of the flow.
            continue
        targets: dict[str, list[str]] = {}
        for flow in scope.iterchildren(bpmn_tag("sequenceFlow")):
            targets.setdefault(flow.get("sourceRef"), []).append(flow.get("targetRef"))
        attached: dict[str, list[str]] = {}
        for node_id, node in nodes.items():
            if local_name(node) == "boundaryEvent":
                attached.setdefault(node.get("attachedToRef"), []).append(node_id)

        def reach(roots: list[str]) -> set[str]:
            seen, pending = set(), list(roots)
            while pending:
                current = pending.pop()
                if current in seen or current not in nodes:
                    continue
                seen.add(current)
                pending += targets.get(current, []) + attached.get(current, [])
            return seen

        # Event subprocesses start by themselves, when their start event's trigger comes.
        roots = [node_id for node_id, node in nodes.items()
                 if local_name(node) == "startEvent" or node.get("triggeredByEvent") == "true"]
        if not roots:  # the missing start event is the problem, and is reported as such
            continue
        covered = reach(roots)
        unreached = [node_id for node_id in nodes if node_id not in covered]
        led_to = {target for source in unreached for target in targets.get(source, [])}
        # One problem per cut-off part: at the element it begins with (what follows is cut off with it).
        heads = [node_id for node_id in unreached
                 if node_id not in led_to and local_name(nodes[node_id]) != "boundaryEvent"]
        for node_id in [*heads, *unreached]:
            if node_id not in covered:
                covered |= reach([node_id])
                yield problem_at(document, nodes[node_id],
                                 "No path from a start event leads to this element, so it would never run: connect "
                                 "it with a sequence flow, or delete it.")


def _broken_references(scope: etree._Element, nodes: dict[str, etree._Element]) -> bool:
    flows = {flow.get("id"): flow for flow in scope.iterchildren(bpmn_tag("sequenceFlow"))}
    if any(flow.get("sourceRef") not in nodes or flow.get("targetRef") not in nodes for flow in flows.values()):
        return True
    return any((reference.text or "").strip() not in flows
               for node in nodes.values() for reference in node.iterchildren(bpmn_tag("incoming"), bpmn_tag("outgoing")))


def warn_boundary_events_leading_nowhere(document: Document, process: etree._Element,
                                         index: BundleIndex) -> Iterator[Problem]:
    sources = {flow.get("sourceRef") for flow in descendants(process, "sequenceFlow")}
    for event in descendants(process, "boundaryEvent"):
        # One that lists an outgoing flow that is gone is an error of check_flow_references.
        if event.get("id") not in sources and event.find(bpmn_tag("outgoing")) is None:
            interrupts = event.get("cancelActivity", "true") != "false"
            outcome = " and cancels the task it is attached to" if interrupts else ""
            yield problem_at(document, event,
                             f"Nothing follows this boundary event: when it fires, its path ends{outcome}. Connect "
                             "it to the step that should follow, or delete it.", severity=WARNING)


def check_recursive_calls(document: Document, process: etree._Element, index: BundleIndex) -> Iterator[Problem]:
    own_key = process.get("id")
    for call in descendants(process, "callActivity"):
        chain = _chain_back(index, call.get("calledElement"), own_key)
        if chain is None:
            continue
        if chain == [own_key]:
            calls = "calls its own process"
        else:
            calls = f"calls '{chain[0]}'" + "".join(f", which calls '{key}'" for key in chain[1:])
            calls += ", which calls this process again"
        yield problem_at(
            document, call,
            f"The call activity {calls}: a recursive call would start instances inside instances without end. "
            "Repeat the steps with a sequence flow back, or a multi-instance task, instead.")


def _chain_back(index: BundleIndex, start: str | None, goal: str) -> list[str] | None:
    """The processes from ``start`` on, each calling the next, the last calling ``goal`` (or
    being it); None when ``start`` never leads back to ``goal``."""
    if start not in index.processes:
        return None
    if start == goal:
        return [start]
    parents: dict[str, str | None] = {start: None}
    pending = [start]
    while pending:
        current = pending.pop(0)
        called = called_elements(index.processes[current][1])
        if goal in called:
            chain = [current]
            while parents[chain[-1]] is not None:
                chain.append(parents[chain[-1]])
            return chain[::-1]
        for key in called:
            if key in index.processes and key not in parents:
                parents[key] = current
                pending.append(key)
    return None
