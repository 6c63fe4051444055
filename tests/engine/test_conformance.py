"""What validates, runs (issue 15): each construct designers bring either runs, or is refused
when the file is validated with a message naming the file, the line, the element and what to
do. The files are in tests/data/conformance, one construct each; messages between instances
have their own tests (test_messages.py)."""

from __future__ import annotations

import pytest

from engine.bpmn.validation import BpmnValidationError, Problem, load_bundle, validate_paths
from engine.errors import ProcessFailed
from engine.models import EventType
from support import DATA

CONFORMANCE = DATA / "conformance"


def errors_of(*names: str) -> list[Problem]:
    return [problem for problem in validate_paths([CONFORMANCE / name for name in names])
            if problem.severity == "error"]


def line_of(name: str, text: str) -> int:
    for number, line in enumerate((CONFORMANCE / name).read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {name}")


def where(problem: Problem) -> tuple:
    return problem.file.rsplit("/", 1)[-1], problem.line, problem.element_type, problem.element_id


@pytest.fixture
def ann(engine):
    engine.add_user("ann")
    return engine


# --- Refused when validated, with what to do ------------------------------------------------


def test_a_flow_node_that_lists_a_flow_that_does_not_exist_is_refused():
    name = "dangling_outgoing.bpmn"
    problems = errors_of(name)

    assert [where(p) for p in problems] == [
        (name, line_of(name, "<bpmn:outgoing>to_remind"), "boundaryEvent", "remind_timer"),
        (name, line_of(name, "<bpmn:incoming>to_remind"), "userTask", "remind"),
    ]
    assert problems[0].message == (
        "The element lists the outgoing sequence flow 'to_remind', but there is no sequence flow with that id in "
        "its process or subprocess, so the path through it would never run: reconnect the element in the modeler.")


def test_an_element_no_path_reaches_is_refused():
    [problem] = errors_of("unreachable.bpmn")

    assert where(problem) == ("unreachable.bpmn", line_of("unreachable.bpmn", 'id="forgotten"'), "userTask",
                              "forgotten")
    assert problem.message == ("No path from a start event leads to this element, so it would never run: connect it "
                               "with a sequence flow, or delete it.")


def test_values_that_used_to_fail_only_at_run_time_are_refused_when_validated():
    name = "run_time_values.bpmn"
    problems = errors_of(name)

    assert [(p.element_id, p.line) for p in problems] == [
        ("due", line_of(name, 'id="due"')), ("urgent", line_of(name, 'id="urgent"')),
        ("owner", line_of(name, 'id="owner"')), ("team", line_of(name, 'id="team"'))]
    due, priority, assignee, candidates = (p.message for p in problems)
    assert due.startswith("camunda:dueDate 'two days' is neither an ISO 8601 duration (P2D, PT4H) nor a date-time")
    assert priority.startswith("camunda:priority 'high' is not a whole number: write a number such as 70")
    assert assignee.startswith("camunda:assignee '${deal owner}' is not a valid expression")
    assert candidates.startswith("camunda:candidateGroups '${teams[}' is not a valid expression")


def test_a_recursive_call_activity_is_refused():
    name = "recursive_call.bpmn"
    problems = errors_of(name)

    assert [(p.element_id, p.line) for p in problems] == [
        ("escalate", line_of(name, 'id="escalate"')), ("ask_again", line_of(name, 'id="ask_again"'))]
    assert problems[0].message.startswith(
        "The call activity calls 'manager_approval', which calls this process again: a recursive call would start "
        "instances inside instances without end.")


def test_a_file_without_a_process_is_refused_and_deploys_nothing(ann):
    [problem] = errors_of("no_process.bpmn")
    assert problem.message.startswith("The file defines no process, so there is nothing to deploy")

    with pytest.raises(BpmnValidationError):
        ann.deploy([CONFORMANCE / "no_process.bpmn"])
    assert ann.definitions() == []


def test_ids_inside_extension_elements_are_not_model_ids(ann):
    problems = validate_paths([CONFORMANCE / "extension_ids.bpmn"])

    assert [p for p in problems if p.severity == "error"] == []
    ann.deploy([CONFORMANCE / "extension_ids.bpmn"])
    instance = ann.start("vendor_made")
    assert [item.name for item in ann.work_items(instance_id=instance.id)] == ["Approve"]


# --- isExecutable and pools -----------------------------------------------------------------


def test_a_process_marked_not_executable_is_validated_but_not_deployed(ann):
    [warning] = validate_paths([CONFORMANCE / "not_executable.bpmn"])
    assert (warning.severity, warning.element_id) == ("warning", "sketch")
    assert "not executable (isExecutable=\"false\")" in warning.message

    with pytest.raises(BpmnValidationError, match="Nothing in this file can be deployed"):
        ann.deploy([CONFORMANCE / "not_executable.bpmn"])
    assert ann.definitions() == []


def test_every_pool_of_a_file_whose_call_activity_names_another_file_starts(ann):
    deployed = ann.deploy([CONFORMANCE / "pools.bpmn", CONFORMANCE / "billing.bpmn"])

    started = {result.key: ann.start(result.key) for result in deployed}

    assert {key: instance.status for key, instance in started.items()} == {
        "accounting": "running", "billing": "running", "selling": "running"}
    assert [i.name for i in ann.work_items(instance_id=started["accounting"].id)] == ["Write the invoice"]


# --- Loops ----------------------------------------------------------------------------------


@pytest.mark.parametrize("data, reason", [
    ({}, "The multi-instance task loops over the variable 'reviewers', which is not set: set it to a list"),
    ({"reviewers": "ann"}, "The multi-instance task loops over the variable 'reviewers', which holds str 'ann', "
                           "not a list"),
])
def test_a_camunda_multi_instance_task_without_a_list_stops_with_a_clear_error(ann, data, reason):
    ann.deploy([CONFORMANCE / "camunda_multi_instance.bpmn"])

    with pytest.raises(ProcessFailed) as failed:
        ann.start("reviews", data)

    assert str(failed.value).startswith(f"'review' (Review the offer): {reason}")


def test_a_camunda_multi_instance_task_runs_once_per_item(ann):
    ann.add_user("bob")
    ann.deploy([CONFORMANCE / "camunda_multi_instance.bpmn"])

    instance = ann.start("reviews", {"reviewers": ["ann", "bob"]})

    assert sorted(i.assignee.username for i in ann.work_items(instance_id=instance.id)) == ["ann", "bob"]


def test_a_standard_multi_instance_task_runs_once_per_item(ann):
    ann.add_user("bob")
    ann.deploy([CONFORMANCE / "standard_multi_instance.bpmn"])
    instance = ann.start("calls", {"customers": ["ann", "bob"]})

    [first] = ann.work_items(instance_id=instance.id)  # sequential: one after the other
    ann.complete(first.id, {}, "ann")
    [second] = ann.work_items(instance_id=instance.id)
    ann.complete(second.id, {}, "bob")

    assert (first.assignee.username, second.assignee.username) == ("ann", "bob")
    assert ann.instance(instance.id).instance.status == "completed"


# --- Expressions, timers, scripts, the initiator --------------------------------------------


def test_a_correlation_key_that_cannot_be_evaluated_stops_with_a_clear_error(ann):
    ann.deploy([CONFORMANCE / "correlation_property.bpmn"])

    with pytest.raises(ProcessFailed) as failed:
        ann.start("shop", {})

    assert str(failed.value).startswith(
        "The correlation key 'order_id' of the message 'order_paid' could not be evaluated: Expression 'order_id' "
        "on message intermediate catch event 'wait_payment' (\"Order paid\") failed: NameError: name 'order_id' "
        "is not defined")


def test_quoted_timer_literals_are_iso_8601(ann, clock):
    assert validate_paths([CONFORMANCE / "quoted_timer.bpmn"]) == []
    ann.deploy([CONFORMANCE / "quoted_timer.bpmn"])
    instance = ann.start("cooling_off")

    clock.advance(days=14)
    ann.wake(instance.id)
    clock.advance(seconds=1)
    ann.wake(instance.id)

    assert [i.name for i in ann.work_items(instance_id=instance.id)] == ["Confirm the order"]
    assert len([e for e in ann.instance(instance.id).history if e.type == EventType.TIMER_FIRED]) == 2


def test_spiffworkflow_pre_and_post_scripts_run(ann):
    ann.deploy([CONFORMANCE / "pre_post_scripts.bpmn"])
    instance = ann.start("scripted", {"amount": 200})

    [item] = ann.work_items(instance_id=instance.id)
    assert item.assignee.username == "ann"  # the pre-script ran before the work item was made
    ann.complete(item.id, {"discount": 20}, "ann")

    data = ann.instance(instance.id).data
    assert (data["limit"], data["approved_at_limit"]) == (20.0, True)


def test_a_broken_pre_script_is_refused_when_validated():
    source = (CONFORMANCE / "pre_post_scripts.bpmn").read_bytes().replace(b"limit = amount * 0.1;", b"import os;")

    with pytest.raises(BpmnValidationError) as refused:
        load_bundle({"scripts.bpmn": source})

    [problem] = refused.value.problems
    assert (problem.element_id, problem.message) == (
        "approve", "Line 1 of the script imports a module (import os): scripts run in a sandbox and cannot import "
                   "modules.")


def test_camunda_initiator_holds_who_started_the_instance(ann):
    ann.deploy([CONFORMANCE / "initiator.bpmn"])

    instance = ann.start("own_request", started_by="ann")

    [item] = ann.work_items(instance_id=instance.id)
    assert item.assignee.username == "ann"
    assert ann.instance(instance.id).data["requester"] == "ann"


def test_a_decision_table_alone_deploys_nothing_and_says_with_what_it_goes(ann, tmp_path):
    dmn = tmp_path / "grade.dmn"
    dmn.write_text('<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="x">'
                   '<decision id="grade" name="Grade"><decisionTable id="t"><input id="i"><inputExpression id="e">'
                   '<text>amount</text></inputExpression></input><output id="o" name="grade"/>'
                   '<rule id="r"><inputEntry id="ri"><text>-</text></inputEntry><outputEntry id="ro"><text>"A"</text>'
                   '</outputEntry></rule></decisionTable></decision></definitions>')

    with pytest.raises(BpmnValidationError) as refused:
        ann.deploy([dmn])

    assert [p.message for p in refused.value.problems] == [
        "A decision table is deployed with the processes that use it: deploy it together with their BPMN files."]
