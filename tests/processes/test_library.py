"""The process library in bpmn/: valid, deployable, drawn, and every human step owned,
timed and given a form; and the domain's migrations match its models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from lxml import etree
from sqlalchemy import inspect

from engine.bpmn.validation import validate_paths
from engine.db import Base
from processes.system import build_system
from support import LIBRARY

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
FILES = sorted(LIBRARY.glob("*.bpmn"))
DOMAIN_TABLES = {m.local_table.name for m in Base.registry.mappers if m.class_.__module__ == "processes.models"}


def test_the_library_has_the_four_processes_and_no_validation_problem():
    assert [f.name for f in FILES] == ["claim_investigation.bpmn", "manual_deal.bpmn", "project_task.bpmn",
                                       "typical_sale.bpmn"]
    assert validate_paths([LIBRARY]) == []  # no errors and no warnings


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_element_is_drawn(path):
    """bpmn.io and Camunda Modeler need a shape for every node and an edge for every flow."""
    root = etree.parse(str(path)).getroot()
    [plane] = root.findall("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
    assert plane.get("bpmnElement") == root.find("bpmn:collaboration", NS).get("id")
    drawn = {e.get("bpmnElement") for e in plane}
    process = root.find("bpmn:process", NS)
    nodes = [e.get("id") for e in process if isinstance(e.tag, str) and etree.QName(e).localname not in
             ("laneSet", "sequenceFlow", "documentation", "extensionElements")]
    flows = [f.get("id") for f in process.findall("bpmn:sequenceFlow", NS)]
    lanes = [lane.get("id") for lane in process.iter("{%s}lane" % NS["bpmn"])]
    participant = root.find("bpmn:collaboration/bpmn:participant", NS).get("id")
    assert set(nodes + flows + lanes + [participant]) == drawn
    for edge in plane.findall("bpmndi:BPMNEdge", NS):
        assert len(edge.findall("{http://www.omg.org/spec/DD/20100524/DI}waypoint")) >= 2
    for shape in plane.findall("bpmndi:BPMNShape", NS):
        bounds = shape.find("{http://www.omg.org/spec/DD/20100524/DC}Bounds")
        assert int(bounds.get("width")) > 0 and int(bounds.get("height")) > 0


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_user_task_has_an_owner_a_planned_duration_a_form_and_a_stage(path):
    process = etree.parse(str(path)).getroot().find("bpmn:process", NS)
    tasks = process.findall("bpmn:userTask", NS)
    assert tasks
    for task in tasks:
        name = task.get("id")
        assert task.get(f"{CAMUNDA}assignee") or task.get(f"{CAMUNDA}candidateGroups"), name
        assert task.get(f"{CAMUNDA}dueDate"), name
        assert task.findall(".//camunda:formData/camunda:formField", NS), name
        [stage] = task.findall(".//camunda:property[@name='stage']", NS)
        assert stage.get("value"), name


def test_the_domain_migrations_match_the_models(database_url):
    system = build_system(database_url, webhooks=None)
    system.init_db()
    system.init_db()  # a second run changes nothing
    engine = system.engine

    def domain_only(obj, name, type_, reflected, compare_to):
        table = obj if type_ == "table" else getattr(obj, "table", None)
        return table is None or table.name in DOMAIN_TABLES

    with engine.db.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_object": domain_only})
        differences = compare_metadata(context, Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert differences == []
    assert DOMAIN_TABLES <= tables and {"processes_alembic_version", "alembic_version"} <= tables
