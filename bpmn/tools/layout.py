"""Give a BPMN file a tidy diagram layout (the ``bpmndi:BPMNDiagram`` section).

    python bpmn/tools/layout.py bpmn/typical_sale.bpmn [more files...]

The .bpmn files are the source of truth and are edited by hand or in Camunda Modeler;
this tool only (re)computes the drawing for files written without one, so that they open
in bpmn.io and Camunda Modeler. It replaces any existing diagram section.

Layout: flow nodes are placed in columns by their longest distance from a start event
(flows that go back to an earlier column are loops and do not count), lanes are horizontal
bands of the pool, and nodes of one column and lane are stacked. Sequence flows are drawn
as orthogonal lines; loops go round below their nodes.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"

SIZES = {"task": (100, 80), "gateway": (50, 50), "event": (36, 36)}
COLUMN_WIDTH = 150
ROW_HEIGHT = 120
LANE_HEADER = 30  # the pool's and the lanes' name bands
LEFT = 160
TOP = 80


def kind(tag: str) -> str:
    local = etree.QName(tag).localname
    if local.endswith("Gateway"):
        return "gateway"
    if local.endswith("Event"):
        return "event"
    return "task"


def layout(path: Path) -> None:
    tree = etree.parse(str(path))
    root = tree.getroot()
    for old in root.findall(f"{{{BPMNDI}}}BPMNDiagram"):
        root.remove(old)
    process = root.find(f"{{{BPMN}}}process")
    collaboration = root.find(f"{{{BPMN}}}collaboration")
    participant = collaboration.find(f"{{{BPMN}}}participant") if collaboration is not None else None

    nodes = {}
    for element in process:
        if not isinstance(element.tag, str):
            continue
        local = etree.QName(element.tag).localname
        if local in ("sequenceFlow", "laneSet", "documentation", "extensionElements"):
            continue
        nodes[element.get("id")] = element
    flows = [(f.get("id"), f.get("sourceRef"), f.get("targetRef")) for f in process.iter(f"{{{BPMN}}}sequenceFlow")]
    lanes = [(lane.get("id"), [ref.text for ref in lane.iter(f"{{{BPMN}}}flowNodeRef")])
             for lane in process.iter(f"{{{BPMN}}}lane")]
    lane_of = {node: lane_id for lane_id, refs in lanes for node in refs}

    columns = _columns(nodes, flows)
    # Rows: stack the nodes of each (lane, column) cell in document order.
    cell_rows: dict[tuple[str | None, int], int] = defaultdict(int)
    row_of = {}
    for node_id in nodes:
        cell = (lane_of.get(node_id), columns[node_id])
        row_of[node_id] = cell_rows[cell]
        cell_rows[cell] += 1
    lane_ids = [lane_id for lane_id, _ in lanes] or [None]
    lane_rows = {lane_id: max([n for (lane, _), n in cell_rows.items() if lane == lane_id], default=1)
                 for lane_id in lane_ids}
    lane_top, y = {}, TOP
    for lane_id in lane_ids:
        lane_top[lane_id] = y
        y += lane_rows[lane_id] * ROW_HEIGHT + 40
    bottom = y
    width = (max(columns.values()) + 1) * COLUMN_WIDTH + 60

    bounds = {}
    for node_id, element in nodes.items():
        w, h = SIZES[kind(element.tag)]
        cx = LEFT + LANE_HEADER + 40 + columns[node_id] * COLUMN_WIDTH + 50
        cy = lane_top[lane_of.get(node_id)] + 20 + row_of[node_id] * ROW_HEIGHT + ROW_HEIGHT // 2
        bounds[node_id] = (cx - w // 2, cy - h // 2, w, h)

    diagram = etree.SubElement(root, f"{{{BPMNDI}}}BPMNDiagram", id=f"{process.get('id')}_diagram")
    plane_element = collaboration.get("id") if collaboration is not None else process.get("id")
    plane = etree.SubElement(diagram, f"{{{BPMNDI}}}BPMNPlane", id=f"{process.get('id')}_plane",
                             bpmnElement=plane_element)
    if participant is not None:
        _shape(plane, participant.get("id"), (LEFT, TOP, width + LANE_HEADER, bottom - TOP), horizontal=True)
        for lane_id in lane_ids:
            if lane_id is not None:
                height = lane_rows[lane_id] * ROW_HEIGHT + 40
                _shape(plane, lane_id, (LEFT + LANE_HEADER, lane_top[lane_id], width, height), horizontal=True)
    for node_id, element in nodes.items():
        shape = _shape(plane, node_id, bounds[node_id],
                       marker=kind(element.tag) == "gateway" and element.get("default") is None and
                       etree.QName(element.tag).localname == "exclusiveGateway")
        if kind(element.tag) != "task" and element.get("name"):
            x, y, w, h = bounds[node_id]
            label = etree.SubElement(shape, f"{{{BPMNDI}}}BPMNLabel")
            etree.SubElement(label, f"{{{DC}}}Bounds", x=str(x - 30), y=str(y + h + 4), width=str(w + 60), height="27")
    loops_below: dict[str | None, int] = defaultdict(int)
    for flow_id, source, target in flows:
        edge = etree.SubElement(plane, f"{{{BPMNDI}}}BPMNEdge", id=f"{flow_id}_di", bpmnElement=flow_id)
        others = [box for node_id, box in bounds.items() if node_id not in (source, target)]
        for x, y in _route(bounds[source], bounds[target], columns[source], columns[target],
                           lane_top[lane_of.get(source)] + lane_rows[lane_of.get(source)] * ROW_HEIGHT + 40,
                           loops_below, lane_of.get(source), others):
            etree.SubElement(edge, f"{{{DI}}}waypoint", x=str(x), y=str(y))
    etree.indent(tree, space="  ")
    tree.write(str(path), xml_declaration=True, encoding="UTF-8")
    path.write_text(path.read_text(encoding="utf-8").replace("<?xml version='1.0' encoding='UTF-8'?>",
                                                             '<?xml version="1.0" encoding="UTF-8"?>') + "",
                    encoding="utf-8")


def _columns(nodes, flows) -> dict[str, int]:
    outgoing = defaultdict(list)
    incoming = defaultdict(int)
    for _, source, target in flows:
        outgoing[source].append(target)
    # Back edges (loops) found by a depth-first walk from the start events do not place nodes.
    starts = [n for n, e in nodes.items() if etree.QName(e.tag).localname == "startEvent"]
    back, state = set(), {}

    def walk(node):
        state[node] = "open"
        for target in outgoing[node]:
            if state.get(target) == "open":
                back.add((node, target))
            elif target not in state:
                walk(target)
        state[node] = "done"

    sys.setrecursionlimit(10000)
    for start in starts:
        walk(start)
    forward = [(s, t) for _, s, t in flows if (s, t) not in back]
    for _, target in forward:
        incoming[target] += 1
    column = {n: 0 for n in nodes}
    ready = [n for n in nodes if incoming[n] == 0]
    while ready:
        node = ready.pop(0)
        for source, target in forward:
            if source == node:
                column[target] = max(column[target], column[node] + 1)
                incoming[target] -= 1
                if incoming[target] == 0:
                    ready.append(target)
    return column


def _shape(plane, element_id, box, horizontal=False, marker=False):
    attributes = {"id": f"{element_id}_di", "bpmnElement": element_id}
    if horizontal:
        attributes["isHorizontal"] = "true"
    if marker:
        attributes["isMarkerVisible"] = "true"
    shape = etree.SubElement(plane, f"{{{BPMNDI}}}BPMNShape", **attributes)
    x, y, w, h = box
    etree.SubElement(shape, f"{{{DC}}}Bounds", x=str(x), y=str(y), width=str(w), height=str(h))
    return shape


def _route(source, target, source_column, target_column, lane_bottom, loops_below, lane, others):
    sx, sy, sw, sh = source
    tx, ty, tw, th = target
    s_mid, t_mid = sy + sh // 2, ty + th // 2
    if target_column > source_column + 1 and any(
        ox < tx and ox + ow > sx + sw and oy <= t_mid <= oy + oh for ox, oy, ow, oh in others
    ):
        # Nodes stand on the way: go round below them and enter the target from beneath.
        below = max(sy + sh, ty + th) + 20
        return [(sx + sw // 2, sy + sh), (sx + sw // 2, below), (tx + tw // 2, below), (tx + tw // 2, ty + th)]
    if target_column > source_column:
        start, end = (sx + sw, s_mid), (tx, t_mid)
        if s_mid == t_mid:
            return [start, end]
        if target_column == source_column + 1 or sy > ty:
            # Leave to the right and turn once, halfway between the columns.
            middle = tx - 25
            return [start, (middle, s_mid), (middle, t_mid), end]
        # Leave downwards or upwards towards the target's row, then right.
        start = (sx + sw // 2, sy + sh if t_mid > s_mid else sy)
        return [start, (sx + sw // 2, t_mid), end]
    # A loop: down from the source, back below the row, up into the target.
    loops_below[lane] += 1
    below = lane_bottom - 8 * loops_below[lane]
    return [(sx + sw // 2, sy + sh), (sx + sw // 2, below), (tx + tw // 2, below), (tx + tw // 2, ty + th)]


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python bpmn/tools/layout.py FILE.bpmn [...]")
    for name in sys.argv[1:]:
        layout(Path(name))
        print(f"{name}: diagram laid out")
