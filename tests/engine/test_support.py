"""One list of what crmflow does with each BPMN construct (engine/bpmn/support.py), shared by the
validator, the parser and docs/bpmn-support.md: every construct on it is tried here in a
small process, and does what the list says — it runs, or it runs and validation warns that
it has no effect, or it is refused with the list's message."""

from __future__ import annotations

import pytest

from engine.bpmn import support
from engine.bpmn.parser import CrmParser, _FLOW_NODES
from engine.bpmn.support import CONSTRUCTS, Kind, Support
from engine.bpmn.validation import validate_paths
from engine.runtime import Engine
from support import REPOSITORY
from support.bpmn import definitions, process, write

TIMER = '<bpmn:timerEventDefinition><bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition>'
OWNED = 'camunda:assignee="ann"'
DECISION = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="grade_definitions" name="Grade"
             namespace="http://crmflow.test">
  <decision id="grade" name="Grade">
    <decisionTable id="grade_table" hitPolicy="FIRST">
      <input id="amount_input"><inputExpression id="amount_expression" typeRef="integer"><text>amount</text>
      </inputExpression></input>
      <output id="grade_output" name="grade" typeRef="string"/>
      <rule id="any"><inputEntry id="any_amount"><text>-</text></inputEntry>
        <outputEntry id="any_grade"><text>"A"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
"""


def around(*steps: str, **kwargs) -> str:
    return definitions(process("tried", *steps), **kwargs)


def attached(task: str, boundary: str, then: str = f'<bpmn:userTask id="after" {OWNED}/>') -> str:
    """A process whose task has a boundary event leading on to ``then``."""
    return definitions(
        '<bpmn:process id="tried" isExecutable="true"><bpmn:startEvent id="s"/>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="task"/>{task}'
        '<bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="e1"/><bpmn:endEvent id="e1"/>'
        f'{boundary}<bpmn:sequenceFlow id="f3" sourceRef="boundary" targetRef="after"/>{then}'
        '<bpmn:sequenceFlow id="f4" sourceRef="after" targetRef="e2"/><bpmn:endEvent id="e2"/></bpmn:process>',
        messages=("news",), extra='<bpmn:error id="failure" errorCode="failed"/>')


def embedded(tag: str, inside: str, attributes: str = "") -> str:
    return (f'<bpmn:{tag} id="part"{attributes}><bpmn:startEvent id="part_start"/>'
            '<bpmn:sequenceFlow id="p1" sourceRef="part_start" targetRef="inner"/>'
            f'{inside}<bpmn:sequenceFlow id="p2" sourceRef="inner" targetRef="part_end"/>'
            f'<bpmn:endEvent id="part_end"/></bpmn:{tag}>')


def event_subprocess() -> str:
    return definitions(
        '<bpmn:process id="tried" isExecutable="true"><bpmn:startEvent id="s"/>'
        f'<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="work"/><bpmn:userTask id="work" {OWNED}/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="e"/><bpmn:endEvent id="e"/>'
        '<bpmn:subProcess id="on_news" triggeredByEvent="true"><bpmn:startEvent id="news_came" isInterrupting="false">'
        '<bpmn:messageEventDefinition messageRef="news_message"/></bpmn:startEvent>'
        '<bpmn:sequenceFlow id="n1" sourceRef="news_came" targetRef="read_news"/>'
        f'<bpmn:userTask id="read_news" {OWNED}/><bpmn:sequenceFlow id="n2" sourceRef="read_news" targetRef="ne"/>'
        '<bpmn:endEvent id="ne"/></bpmn:subProcess></bpmn:process>', messages=("news",))


def branching(gateway: str, joined_by: str) -> str:
    return definitions(
        f'<bpmn:process id="tried" isExecutable="true"><bpmn:startEvent id="s"/>{gateway}'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="split"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="a"><bpmn:conditionExpression>True'
        '</bpmn:conditionExpression></bpmn:sequenceFlow>'
        '<bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="b"/>'
        f'<bpmn:userTask id="a" {OWNED}/><bpmn:userTask id="b" {OWNED}/>{joined_by}'
        '<bpmn:sequenceFlow id="f4" sourceRef="a" targetRef="join"/>'
        '<bpmn:sequenceFlow id="f5" sourceRef="b" targetRef="join"/>'
        '<bpmn:sequenceFlow id="f6" sourceRef="join" targetRef="e"/><bpmn:endEvent id="e"/></bpmn:process>')


USER_TASK = f'<bpmn:userTask id="work" name="Work" {OWNED}/>'
ON_PROCESS = {"camunda:historyTimeToLive": "P180D", "camunda:versionTag": "1.0",
              "camunda:isStartableInTasklist": "true", "camunda:candidateStarterGroups": "sales",
              "camunda:candidateStarterUsers": "ann"}
ON_TASK_ATTRIBUTES = {
    "camunda:candidateUsers": "ann, bob", "camunda:candidateGroups": "sales", "camunda:dueDate": "P2D",
    "camunda:priority": "70", "camunda:formKey": "embedded:app:forms/work.html", "camunda:class": "org.example.Work",
    "camunda:delegateExpression": "${work}", "camunda:expression": "${work.run()}", "camunda:type": "external",
    "camunda:topic": "work", "camunda:asyncBefore": "true", "camunda:asyncAfter": "true", "camunda:async": "true",
    "camunda:exclusive": "false", "camunda:jobPriority": "10", "camunda:diagramRelationId": "abc",
}
EXTENSION_ELEMENTS = {
    "camunda:formData": '<camunda:formData><camunda:formField id="note" type="string"/></camunda:formData>',
    "camunda:properties": '<camunda:properties><camunda:property name="stage" value="Offer"/></camunda:properties>',
    "camunda:inputOutput": '<camunda:inputOutput><camunda:inputParameter name="x">1</camunda:inputParameter>'
                           '</camunda:inputOutput>',
    "camunda:executionListener": '<camunda:executionListener class="org.example.Listener" event="start"/>',
    "camunda:taskListener": '<camunda:taskListener class="org.example.Listener" event="create"/>',
    "camunda:connector": '<camunda:connector><camunda:connectorId>http-connector</camunda:connectorId>'
                         '</camunda:connector>',
    "camunda:field": '<camunda:field name="target"><camunda:string>x</camunda:string></camunda:field>',
    "camunda:failedJobRetryTimeCycle": '<camunda:failedJobRetryTimeCycle>R3/PT5M</camunda:failedJobRetryTimeCycle>',
    "spiffworkflow:preScript": "<spiffworkflow:preScript>ready = True</spiffworkflow:preScript>",
    "spiffworkflow:postScript": "<spiffworkflow:postScript>done = True</spiffworkflow:postScript>",
}
CALLED = ('<bpmn:process id="called" isExecutable="false"><bpmn:startEvent id="cs"/>'
          '<bpmn:sequenceFlow id="c1" sourceRef="cs" targetRef="ce"/><bpmn:endEvent id="ce"/></bpmn:process>')

FILES = {
    "startEvent": around(USER_TASK),
    "endEvent": around(USER_TASK),
    "intermediateCatchEvent": around(f'<bpmn:intermediateCatchEvent id="wait">{TIMER}</bpmn:intermediateCatchEvent>'),
    "intermediateThrowEvent": around('<bpmn:intermediateThrowEvent id="pass"/>', USER_TASK),
    "boundaryEvent": attached(f'<bpmn:userTask id="task" {OWNED}/>',
                              f'<bpmn:boundaryEvent id="boundary" attachedToRef="task">{TIMER}</bpmn:boundaryEvent>'),
    "task": around('<bpmn:task id="plain"/>', USER_TASK),
    "userTask": around(USER_TASK),
    "manualTask": around(f'<bpmn:manualTask id="by_hand" {OWNED}/>'),
    "scriptTask": around('<bpmn:scriptTask id="compute"><bpmn:script>total = 2 + 2</bpmn:script></bpmn:scriptTask>',
                         USER_TASK),
    "serviceTask": around('<bpmn:serviceTask id="service"/>', USER_TASK),
    "sendTask": around('<bpmn:sendTask id="tell" messageRef="news_message"/>', USER_TASK, messages=("news",)),
    "receiveTask": around('<bpmn:receiveTask id="hear" messageRef="news_message"/>', messages=("news",)),
    "businessRuleTask": around('<bpmn:businessRuleTask id="decide" camunda:decisionRef="grade"/>', USER_TASK),
    "callActivity": definitions(process("tried", '<bpmn:callActivity id="call" calledElement="called"/>', USER_TASK),
                                CALLED),
    "subProcess": around(embedded("subProcess", f'<bpmn:userTask id="inner" {OWNED}/>')),
    "transaction": around(embedded("transaction", f'<bpmn:userTask id="inner" {OWNED}/>')),
    "exclusiveGateway": branching('<bpmn:exclusiveGateway id="split" default="f3"/>',
                                  '<bpmn:exclusiveGateway id="join"/>'),
    "inclusiveGateway": branching('<bpmn:inclusiveGateway id="split" default="f3"/>',
                                  '<bpmn:inclusiveGateway id="join"/>'),
    "parallelGateway": branching('<bpmn:parallelGateway id="split"/>', '<bpmn:parallelGateway id="join"/>').replace(
        '<bpmn:conditionExpression>True</bpmn:conditionExpression>', ''),
    "eventBasedGateway": around('<bpmn:eventBasedGateway id="choose"/>',
                                f'<bpmn:intermediateCatchEvent id="wait">{TIMER}</bpmn:intermediateCatchEvent>'),
    "complexGateway": around('<bpmn:complexGateway id="complex"/>'),
    "adHocSubProcess": around(f'<bpmn:adHocSubProcess id="adhoc"><bpmn:userTask id="free" {OWNED}/>'
                              '</bpmn:adHocSubProcess>'),
    "timerEventDefinition": around(f'<bpmn:intermediateCatchEvent id="wait">{TIMER}</bpmn:intermediateCatchEvent>'),
    "messageEventDefinition": around('<bpmn:intermediateCatchEvent id="wait">'
                                     '<bpmn:messageEventDefinition messageRef="news_message"/>'
                                     '</bpmn:intermediateCatchEvent>', messages=("news",)),
    "signalEventDefinition": around('<bpmn:intermediateThrowEvent id="shout"><bpmn:signalEventDefinition '
                                    'signalRef="alarm"/></bpmn:intermediateThrowEvent>', USER_TASK,
                                    extra='<bpmn:signal id="alarm" name="alarm"/>'),
    "errorEventDefinition": attached(embedded("subProcess", '<bpmn:task id="inner"/>').replace(
        'id="part"', 'id="task"').replace('<bpmn:endEvent id="part_end"/>', '<bpmn:endEvent id="part_end">'
                                          '<bpmn:errorEventDefinition errorRef="failure"/></bpmn:endEvent>'),
        '<bpmn:boundaryEvent id="boundary" attachedToRef="task"><bpmn:errorEventDefinition errorRef="failure"/>'
        '</bpmn:boundaryEvent>'),
    "escalationEventDefinition": around('<bpmn:intermediateThrowEvent id="up"><bpmn:escalationEventDefinition '
                                        'escalationRef="higher"/></bpmn:intermediateThrowEvent>', USER_TASK,
                                        extra='<bpmn:escalation id="higher" escalationCode="up"/>'),
    "terminateEventDefinition": around(USER_TASK).replace(
        '<bpmn:endEvent id="tried_end"/>',
        '<bpmn:endEvent id="tried_end"><bpmn:terminateEventDefinition/></bpmn:endEvent>'),
    "cancelEventDefinition": attached(embedded("transaction", '<bpmn:task id="inner"/>').replace(
        'id="part"', 'id="task"').replace('<bpmn:endEvent id="part_end"/>', '<bpmn:endEvent id="part_end">'
                                          '<bpmn:cancelEventDefinition/></bpmn:endEvent>'),
        '<bpmn:boundaryEvent id="boundary" attachedToRef="task"><bpmn:cancelEventDefinition/></bpmn:boundaryEvent>'),
    "conditionalEventDefinition": around('<bpmn:intermediateCatchEvent id="when"><bpmn:conditionalEventDefinition>'
                                         '<bpmn:condition>ready</bpmn:condition></bpmn:conditionalEventDefinition>'
                                         '</bpmn:intermediateCatchEvent>', USER_TASK),
    "compensateEventDefinition": around('<bpmn:intermediateThrowEvent id="undo"><bpmn:compensateEventDefinition/>'
                                        '</bpmn:intermediateThrowEvent>'),
    "linkEventDefinition": around('<bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="on"/>'
                                  '</bpmn:intermediateThrowEvent>'),
    "process": around(USER_TASK),
    "sequenceFlow": around(USER_TASK),
    "multiInstanceLoopCharacteristics": around(f'<bpmn:userTask id="each" {OWNED}><bpmn:multiInstanceLoopCharacteristics>'
                                               '<bpmn:loopCardinality>2</bpmn:loopCardinality>'
                                               '</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>'),
    "standardLoopCharacteristics": around(f'<bpmn:userTask id="again" {OWNED}><bpmn:standardLoopCharacteristics '
                                          'loopMaximum="2"/></bpmn:userTask>'),
    "message": around('<bpmn:receiveTask id="hear" messageRef="news_message"/>', messages=("news",)),
    "signal": around(USER_TASK, extra='<bpmn:signal id="alarm" name="alarm"/>'),
    "error": around(USER_TASK, extra='<bpmn:error id="failure" errorCode="failed"/>'),
    "escalation": around(USER_TASK, extra='<bpmn:escalation id="higher" escalationCode="up"/>'),
    "correlationProperty": around('<bpmn:receiveTask id="hear" messageRef="news_message"/>', messages=("news",),
                                  extra='<bpmn:correlationProperty id="topic"><bpmn:correlationPropertyRetrievalExpression '
                                        'messageRef="news_message"><bpmn:formalExpression>topic</bpmn:formalExpression>'
                                        '</bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>'),
    "lane": around('<bpmn:laneSet id="lanes"><bpmn:lane id="sales_lane" name="sales"><bpmn:flowNodeRef>work'
                   '</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>', '<bpmn:userTask id="work"/>'),
    "dataObject": around('<bpmn:dataObject id="notes"/><bpmn:dataObjectReference id="notes_ref" dataObjectRef="notes"/>',
                         '<bpmn:scriptTask id="write_notes"><bpmn:dataOutputAssociation id="out"><bpmn:targetRef>'
                         'notes_ref</bpmn:targetRef></bpmn:dataOutputAssociation><bpmn:script>notes = "seen"'
                         '</bpmn:script></bpmn:scriptTask>', USER_TASK),
    "dataObjectReference": around('<bpmn:dataObject id="notes"/><bpmn:dataObjectReference id="notes_ref" '
                                  'dataObjectRef="notes"/>', '<bpmn:scriptTask id="write_notes"><bpmn:dataOutputAssociation '
                                  'id="out"><bpmn:targetRef>notes_ref</bpmn:targetRef></bpmn:dataOutputAssociation>'
                                  '<bpmn:script>notes = "seen"</bpmn:script></bpmn:scriptTask>', USER_TASK),
    "ioSpecification": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:ioSpecification><bpmn:dataInput id="amount"/>'
                              '<bpmn:inputSet><bpmn:dataInputRefs>amount</bpmn:dataInputRefs></bpmn:inputSet>'
                              '<bpmn:outputSet/></bpmn:ioSpecification></bpmn:userTask>'),
    "dataStore": around(USER_TASK, extra='<bpmn:dataStore id="erp" name="ERP"/>'),
    "dataStoreReference": around('<bpmn:dataStoreReference id="erp_ref"/>', USER_TASK),
    "potentialOwner": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:potentialOwner><bpmn:resourceAssignmentExpression>'
                             '<bpmn:formalExpression>sales</bpmn:formalExpression></bpmn:resourceAssignmentExpression>'
                             '</bpmn:potentialOwner></bpmn:userTask>'),
    "performer": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:performer/></bpmn:userTask>'),
    "humanPerformer": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:humanPerformer/></bpmn:userTask>'),
    "collaboration": around(USER_TASK, extra='<bpmn:collaboration id="together"><bpmn:participant id="us" '
                                             'processRef="tried"/></bpmn:collaboration>'),
    "documentation": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:documentation>Do it well.</bpmn:documentation>'
                            '</bpmn:userTask>'),
    "textAnnotation": around('<bpmn:textAnnotation id="note"><bpmn:text>Remember</bpmn:text></bpmn:textAnnotation>',
                             USER_TASK).replace('<bpmn:textAnnotation id="note">', '<bpmn:textAnnotation id="note">', 1),
    "group": around('<bpmn:group id="phase"/>', USER_TASK),
    "BPMNDiagram": around(USER_TASK).replace(
        "</bpmn:definitions>", '<bpmndi:BPMNDiagram xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
                               'id="diagram"><bpmndi:BPMNPlane id="plane" bpmnElement="tried"/></bpmndi:BPMNDiagram>'
                               "</bpmn:definitions>"),
    "extensionElements": around(f'<bpmn:userTask id="work" {OWNED}><bpmn:extensionElements><vendor:note '
                                'xmlns:vendor="http://vendor.example">x</vendor:note></bpmn:extensionElements>'
                                '</bpmn:userTask>'),
    "camunda:assignee": around(USER_TASK),
    "camunda:initiator": around(USER_TASK).replace('<bpmn:startEvent id="tried_start"/>',
                                                   '<bpmn:startEvent id="tried_start" camunda:initiator="who"/>'),
    "camunda:decisionRef": around('<bpmn:businessRuleTask id="decide" camunda:decisionRef="grade"/>', USER_TASK),
    "camunda:resultVariable": around('<bpmn:businessRuleTask id="decide" camunda:decisionRef="grade" '
                                     'camunda:resultVariable="result"/>', USER_TASK),
    "camunda:collection": around(f'<bpmn:userTask id="each" {OWNED}><bpmn:multiInstanceLoopCharacteristics '
                                 'camunda:collection="items" camunda:elementVariable="item"/></bpmn:userTask>'),
    "camunda:elementVariable": around(f'<bpmn:userTask id="each" {OWNED}><bpmn:multiInstanceLoopCharacteristics '
                                      'camunda:collection="items" camunda:elementVariable="item"/></bpmn:userTask>'),
    "camunda:resource": around('<bpmn:scriptTask id="compute" camunda:resource="compute.py"><bpmn:script>x = 1'
                               '</bpmn:script></bpmn:scriptTask>', USER_TASK),
    "camunda:in": definitions(process("tried", '<bpmn:callActivity id="call" calledElement="called">'
                                               '<bpmn:extensionElements><camunda:in source="a" target="b"/>'
                                               '</bpmn:extensionElements></bpmn:callActivity>', USER_TASK), CALLED),
    "camunda:out": definitions(process("tried", '<bpmn:callActivity id="call" calledElement="called">'
                                                '<bpmn:extensionElements><camunda:out source="a" target="b"/>'
                                                '</bpmn:extensionElements></bpmn:callActivity>', USER_TASK), CALLED),
    **{name: definitions(process("tried", '<bpmn:callActivity id="call" calledElement="called" '
                                          f'{name}="latest"/>', USER_TASK), CALLED)
       for name in ("camunda:calledElementBinding", "camunda:calledElementVersion", "camunda:calledElementTenantId")},
    **{name: around(USER_TASK).replace('<bpmn:process id="tried" name="tried"',
                                       f'<bpmn:process id="tried" name="tried" {name}="{value}"')
       for name, value in ON_PROCESS.items()},
    **{name: around(f'<bpmn:userTask id="work" {OWNED} {name}="{value}"/>') for name, value in ON_TASK_ATTRIBUTES.items()},
    **{name: around(f'<bpmn:userTask id="work" {OWNED}><bpmn:extensionElements>{element}</bpmn:extensionElements>'
                    '</bpmn:userTask>') for name, element in EXTENSION_ELEMENTS.items()},
}
FILES["camunda:field"] = FILES["camunda:field"].replace('<bpmn:userTask id="work" camunda:assignee="ann">',
                                                        '<bpmn:userTask id="work" camunda:assignee="ann" '
                                                        'camunda:class="org.example.Work">')
START_DATA = {"ioSpecification": {"amount": 5}, "camunda:collection": {"items": [1, 2]},
              "camunda:elementVariable": {"items": [1, 2]}, "conditionalEventDefinition": {"ready": True},
              "businessRuleTask": {"amount": 5}, "camunda:decisionRef": {"amount": 5},
              "camunda:resultVariable": {"amount": 5}, "correlationProperty": {"topic": "prices"}}


@pytest.fixture(scope="module")
def sqlite_engine(tmp_path_factory):
    engine = Engine(f"sqlite:///{tmp_path_factory.mktemp('support')}/support.db")
    engine.init_db()
    engine.add_user("ann")
    yield engine
    engine.dispose()


def test_every_construct_of_the_list_is_tried_here():
    assert sorted(FILES) == sorted(construct.name for construct in CONSTRUCTS)


def test_the_parser_builds_exactly_the_flow_nodes_that_the_list_says_run():
    runnable = {tag for tag in support.flow_nodes_that_run()}
    assert {tag.split("}")[1] for tag in CrmParser.OVERRIDE_PARSER_CLASSES} == runnable
    assert CrmParser.PARSER_CLASSES == {}
    assert runnable <= set(_FLOW_NODES)


def test_docs_bpmn_support_has_the_lists_table():
    document = (REPOSITORY / "docs" / "bpmn-support.md").read_text(encoding="utf-8")
    assert support.with_table(document) == document, "run: python -m engine.bpmn.support docs/bpmn-support.md"


@pytest.mark.parametrize("construct", CONSTRUCTS, ids=lambda construct: construct.name)
def test_a_construct_does_what_the_list_says(construct, sqlite_engine, tmp_path):
    key = construct.name.replace(":", "_")
    files = [write(tmp_path, f"{key}.bpmn", FILES[construct.name]), write(tmp_path, "grade.dmn", DECISION)]
    problems = validate_paths(files)
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]

    if construct.support == Support.REFUSED:
        assert construct.how in [p.message for p in errors], problems
        return
    assert errors == []
    said = [p for p in warnings if construct.how in p.message]
    if construct.support == Support.WARNED:
        assert said, problems
    else:
        assert said == []
    if construct.support == Support.IGNORED:
        assert [p for p in warnings if construct.name in p.message] == []

    deployed = {result.key for result in sqlite_engine.deploy(files)}
    assert "tried" in deployed
    instance = sqlite_engine.start("tried", START_DATA.get(construct.name, {}), started_by="ann")
    assert instance.status in ("running", "completed")
    if construct.kind in (Kind.FLOW_NODE, Kind.EVENT_DEFINITION):
        history = sqlite_engine.instance(instance.id).history
        assert any(event.type == "task_completed" for event in history)


def test_an_event_subprocess_runs_when_its_start_event_is_triggered(sqlite_engine, tmp_path):
    sqlite_engine.deploy([write(tmp_path, "event_subprocess.bpmn", event_subprocess().replace(
        'id="tried"', 'id="with_event_subprocess"'))])
    instance = sqlite_engine.start("with_event_subprocess")

    sqlite_engine.publish_message("news")

    assert sorted(i.task_spec for i in sqlite_engine.work_items(instance_id=instance.id)) == ["read_news", "work"]
