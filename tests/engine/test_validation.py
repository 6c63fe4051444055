"""Loading BPMN and DMN bundles: what loads, and how every problem is explained.

The hostile files live in ``tests/data/hostile/``, one problem each; the external corpora
(real Camunda examples and the OMG interchange diagrams) are in ``/work/shared/corpora``,
or wherever ``CRMFLOW_CORPORA`` points.
"""

import os
import re
from pathlib import Path

import pytest
from SpiffWorkflow.bpmn.specs.bpmn_process_spec import BpmnProcessSpec

from engine.bpmn import validation
from engine.bpmn.validation import documents
from engine.bpmn.validation import BpmnValidationError, Bundle, Problem, ProcessModel, load_bundle, validate_paths
from support import DATA, REPOSITORY

HOSTILE = DATA / "hostile"
CORPORA = Path(os.environ.get("CRMFLOW_CORPORA") or REPOSITORY.parent / "shared" / "corpora")
NO_CORPORA = f"no BPMN corpora at {CORPORA} (set CRMFLOW_CORPORA to their folder)"

# "KeyError('x')", "TypeError(...)": what a designer must never be shown.
BARE_EXCEPTION = re.compile(r"\b[A-Z]\w*(?:Error|Exception|Exit|Interrupt)\(")


def problems_of(*names: str) -> list[Problem]:
    """Load hostile fixtures as one bundle, which must fail; return its problems."""
    return problems_of_bundle({name: (HOSTILE / name).read_bytes() for name in names})


def problems_of_bundle(files: dict[str, bytes]) -> list[Problem]:
    with pytest.raises(BpmnValidationError) as raised:
        load_bundle(files)
    return raised.value.problems


def the_error(name: str) -> Problem:
    errors = [problem for problem in problems_of(name) if problem.severity == "error"]
    assert len(errors) == 1, "\n".join(map(str, errors))
    return errors[0]


def line_of(name: str, text: str) -> int:
    """The 1-based line of the fixture on which ``text`` first appears."""
    for number, line in enumerate((HOSTILE / name).read_text().splitlines(), start=1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} is not in {name}")


# --- Files that are not (safe) XML ----------------------------------------------------------


@pytest.mark.parametrize(
    "name, phrase, line",
    [
        ("billion_laughs.bpmn", "contains a DOCTYPE declaration", 2),
        ("external_entity.bpmn", "contains a DOCTYPE declaration", 2),
        ("external_dtd.bpmn", "contains a DOCTYPE declaration", 2),
        ("truncated.bpmn", "ends before its XML is complete", 7),
        ("not_xml.bpmn", "is not well-formed XML (column 1)", 1),
        ("binary_garbage.bpmn", "is binary data", None),
        ("not_utf8.bpmn", "is not UTF-8 text (byte 0xe9 at column 43)", 3),
        ("wrong_root.bpmn", "its root element is <svg>", 3),
    ],
)
def test_a_file_that_is_not_safe_bpmn_xml_is_refused_with_its_reason(name, phrase, line):
    [problem] = problems_of(name)

    assert problem.file == name
    assert phrase in problem.message
    assert problem.line == line


def test_an_external_entity_is_never_read():
    [problem] = problems_of("external_entity.bpmn")

    assert "root:" not in str(problem)  # the first line of /etc/passwd


def test_an_oversized_file_is_refused_before_parsing():
    oversized = b"<bpmn:definitions>" + b" " * validation.MAX_FILE_BYTES

    [problem] = problems_of_bundle({"huge.bpmn": oversized})

    assert problem.file == "huge.bpmn"
    assert "accepts BPMN and DMN files of up to 10.0 MB" in problem.message


def test_a_file_with_too_many_elements_is_refused_before_spiffworkflow_reads_it():
    tasks = "".join(f'<bpmn:task id="task_{number}"/>' for number in range(validation.MAX_ELEMENTS_PER_FILE))
    crowded = (
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="crowded">'
        f'<bpmn:process id="crowded_process">{tasks}</bpmn:process></bpmn:definitions>'
    )

    [problem] = problems_of_bundle({"crowded.bpmn": crowded.encode()})

    assert "The file has 10,002 XML elements; crmflow accepts up to 10,000 per file" in problem.message


def test_a_bundle_too_large_as_a_whole_is_refused(monkeypatch):
    monkeypatch.setattr(documents, "MAX_BUNDLE_BYTES", 1000)
    files = {name: (HOSTILE / name).read_bytes() for name in ("bad_timer.bpmn", "bad_condition.bpmn")}

    problems = problems_of_bundle(files)

    assert any(
        problem.file == "bad_condition.bpmn" and "the bundle exceeds" in problem.message
        for problem in problems
    )


# --- Diagrams crmflow cannot run ------------------------------------------------------------


@pytest.mark.parametrize(
    "name, element_id, line_text, phrase",
    [
        (
            "dangling_sequence_flow.bpmn",
            "to_brochure",
            'id="to_brochure"',
            "leads to 'send_brochure', but there is no element with that id",
        ),
        (
            "missing_decision.bpmn",
            "decide_discount",
            'camunda:decisionRef="discount_rules"',
            "uses decision 'discount_rules', but no DMN file in the bundle defines it",
        ),
        (
            "missing_called_process.bpmn",
            "run_credit_check",
            'id="run_credit_check"',
            "calls process 'credit_check', but no file in the bundle defines it",
        ),
        (
            "script_syntax_error.bpmn",
            "compute_discount",
            "if amount &gt; 10000",
            "Line 2 of the script: expected ':'",
        ),
        (
            "script_import.bpmn",
            "archive_files",
            "import os",
            "imports a module (import os): scripts run in a sandbox",
        ),
        (
            "bad_condition.bpmn",
            "big_claim",
            "${amount &gt;= }",
            "The condition '${amount >= }' is not a valid expression",
        ),
        (
            "bad_timer.bpmn",
            "wait_two_days",
            "in 2 days",
            "The timer 'in 2 days' is not an ISO 8601 date, duration or cycle",
        ),
        (
            "no_start_event.bpmn",
            "qualify_lead",
            'id="qualify_lead"',
            "has no start event",
        ),
        (
            "duplicate_ids.bpmn",
            "review",
            'name="Sales review"',
            "The id 'review' is already used by the userTask on line 8",
        ),
        (
            "complex_gateway.bpmn",
            "two_of_three",
            'id="two_of_three"',
            "Complex gateways are not supported by crmflow",
        ),
        (
            "data_object_out_of_reach.bpmn",
            "file_documents",
            "<bpmn:targetRef>customer_file_reference",
            "Writes the data object 'customer_file', which is defined neither in this process",
        ),
        (
            "missing_message.bpmn",
            "contract_back",
            'messageRef="contract_signed"',
            "Refers to the message 'contract_signed', which this file does not define",
        ),
        (
            "two_decisions.dmn",
            "lead_owner",
            'id="lead_owner"',
            "defines 2 decisions ('lead_score', 'lead_owner'); crmflow reads one decision table",
        ),
    ],
)
def test_a_diagram_crmflow_cannot_run_names_the_element_and_the_fix(name, element_id, line_text, phrase):
    problem = the_error(name)

    assert problem.file == name
    assert problem.element_id == element_id
    assert problem.line == line_of(name, line_text)
    assert phrase in problem.message


def test_spiffworkflow_internal_errors_are_explained_on_the_element_being_read():
    # SpiffWorkflow raises NotImplementedError for a boundary event without a trigger: crmflow
    # finds it first and says what is missing...
    boundary = the_error("boundary_event_without_trigger.bpmn")
    assert (boundary.element_type, boundary.element_id) == ("boundaryEvent", "escalate")
    assert "A boundary event needs a trigger, and this one has none" in boundary.message

    # ... and a raw KeyError for a business rule task without camunda:decisionRef, even in
    # a pool that is only documentation.
    rule = the_error("rule_task_in_documentation_pool.bpmn")
    assert (rule.element_type, rule.element_id) == ("businessRuleTask", "partner_price")
    assert rule.line == line_of("rule_task_in_documentation_pool.bpmn", 'id="partner_price"')
    assert "camunda:decisionRef is missing" in rule.message

    for problem in (boundary, rule):
        assert not BARE_EXCEPTION.search(problem.message)


def test_every_problem_of_a_bundle_is_reported_not_just_the_first():
    problems = problems_of("bad_timer.bpmn", "bad_condition.bpmn", "missing_decision.bpmn", "not_xml.bpmn")

    assert {problem.file for problem in problems} == {
        "bad_timer.bpmn",
        "bad_condition.bpmn",
        "missing_decision.bpmn",
        "not_xml.bpmn",
    }


def test_a_problem_reads_like_a_compiler_message():
    problem = Problem(
        "sale.bpmn",
        "Nobody would own this work item.",
        line=42,
        element_id="offer",
        element_name="Send commercial offer",
        element_type="userTask",
    )

    assert str(problem) == (
        "sale.bpmn:42: userTask 'offer' (Send commercial offer): Nobody would own this work item."
    )
    assert str(Problem("sale.bpmn", "The file is binary data.")) == "sale.bpmn: The file is binary data."
    assert str(Problem("sale.bpmn", "Check it.", line=3, severity="warning")) == "sale.bpmn:3: warning: Check it."


def test_the_validation_error_lists_one_problem_per_line():
    with pytest.raises(BpmnValidationError) as raised:
        load_bundle({name: (HOSTILE / name).read_bytes() for name in ("bad_timer.bpmn", "not_xml.bpmn")})

    assert str(raised.value).splitlines() == [str(problem) for problem in raised.value.problems]


# --- A good Camunda-style bundle ------------------------------------------------------------

OFFER_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
                  id="offer_definitions" targetNamespace="http://crmflow.example/sales">
  <bpmn:process id="commercial_offer" name="Commercial offer" isExecutable="true">
    <bpmn:startEvent id="lead_qualified" name="Lead qualified"/>
    <bpmn:sequenceFlow id="to_discount" sourceRef="lead_qualified" targetRef="decide_discount"/>
    <bpmn:businessRuleTask id="decide_discount" name="Decide the discount"
                           camunda:decisionRef="offer_discount" camunda:resultVariable="discount"/>
    <bpmn:sequenceFlow id="to_price" sourceRef="decide_discount" targetRef="compute_price"/>
    <bpmn:scriptTask id="compute_price" name="Compute the price" scriptFormat="python">
      <bpmn:script>price = amount * (1 - discount)</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="to_offer" sourceRef="compute_price" targetRef="offer"/>
    <bpmn:userTask id="offer" name="Send commercial offer" camunda:assignee="${curator}"
                   camunda:candidateGroups="sales, managers" camunda:dueDate="P2D" camunda:priority="60">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="offer_sent" label="Offer sent?" type="boolean"/>
          <camunda:formField id="channel" label="Sent by" type="enum">
            <camunda:value id="email" name="E-mail"/>
            <camunda:value id="post" name="Post"/>
          </camunda:formField>
        </camunda:formData>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="no_answer" name="No answer in 3 days" attachedToRef="offer" cancelActivity="false">
      <bpmn:timerEventDefinition id="three_days">
        <bpmn:timeDuration xsi:type="bpmn:tFormalExpression">P3D</bpmn:timeDuration>
      </bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:sequenceFlow id="to_reminder" sourceRef="no_answer" targetRef="remind"/>
    <bpmn:userTask id="remind" name="Remind the curator" camunda:assignee="${curator}"/>
    <bpmn:sequenceFlow id="to_reminded" sourceRef="remind" targetRef="reminded"/>
    <bpmn:endEvent id="reminded"/>
    <bpmn:sequenceFlow id="to_gateway" sourceRef="offer" targetRef="big_deal"/>
    <bpmn:exclusiveGateway id="big_deal" name="Big deal?" default="small"/>
    <bpmn:sequenceFlow id="big" sourceRef="big_deal" targetRef="approve">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">${price &gt; 10000 &amp;&amp; offer_sent}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="small" sourceRef="big_deal" targetRef="done"/>
    <bpmn:userTask id="approve" name="Approve the deal" camunda:candidateGroups="managers"/>
    <bpmn:sequenceFlow id="to_done" sourceRef="approve" targetRef="done"/>
    <bpmn:endEvent id="done"/>
  </bpmn:process>
</bpmn:definitions>
"""

DISCOUNT_DMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/"
             id="offer_discount_definitions" name="Offer discount" namespace="http://crmflow.example/sales">
  <decision id="offer_discount" name="Offer discount">
    <decisionTable id="discount_table" hitPolicy="FIRST">
      <input id="amount_input" label="Amount">
        <inputExpression id="amount_expression" typeRef="double"><text>amount</text></inputExpression>
      </input>
      <output id="discount_output" label="Discount" name="discount" typeRef="double"/>
      <rule id="big_order">
        <inputEntry id="big_order_amount"><text>&gt;= 10000</text></inputEntry>
        <outputEntry id="big_order_discount"><text>0.1</text></outputEntry>
      </rule>
      <rule id="any_order">
        <inputEntry id="any_order_amount"><text>-</text></inputEntry>
        <outputEntry id="any_order_discount"><text>0</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
"""


def test_a_good_camunda_bundle_loads_and_exposes_its_process():
    bundle = load_bundle({"offer.bpmn": OFFER_BPMN, "discount.dmn": DISCOUNT_DMN})

    assert isinstance(bundle, Bundle)
    assert bundle.warnings == []
    assert list(bundle.processes) == ["commercial_offer"]
    model = bundle.processes["commercial_offer"]
    assert isinstance(model, ProcessModel)
    assert model.name == "Commercial offer"
    assert isinstance(model.spec, BpmnProcessSpec)
    offer = model.spec.task_specs["offer"]
    assert (offer.assignee, offer.candidate_groups, offer.due_date) == ("${curator}", "sales, managers", "P2D")
    assert [field.id for field in offer.form.fields] == ["offer_sent", "channel"]
    assert "decide_discount" in model.spec.task_specs


def test_a_user_task_nobody_owns_is_a_warning_not_an_error():
    unowned = OFFER_BPMN.replace(b' camunda:candidateGroups="managers"', b"")

    bundle = load_bundle({"offer.bpmn": unowned, "discount.dmn": DISCOUNT_DMN})

    [warning] = bundle.warnings
    assert (warning.severity, warning.element_id) == ("warning", "approve")
    assert "Nobody would own this work item" in warning.message
    assert "commercial_offer" in bundle.processes


def test_a_process_only_reached_by_a_call_activity_runs_inside_its_caller():
    caller = OFFER_BPMN.replace(
        b'<bpmn:userTask id="approve" name="Approve the deal" camunda:candidateGroups="managers"/>',
        b'<bpmn:callActivity id="approve" name="Approve the deal" calledElement="approval"/>',
    )
    approval = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  id="approval_definitions" targetNamespace="http://crmflow.example/sales">
  <bpmn:process id="approval" name="Approval" isExecutable="false">
    <bpmn:startEvent id="approval_requested"/>
    <bpmn:sequenceFlow id="to_approved" sourceRef="approval_requested" targetRef="approved"/>
    <bpmn:endEvent id="approved"/>
  </bpmn:process>
</bpmn:definitions>
"""
    bundle = load_bundle({"offer.bpmn": caller, "discount.dmn": DISCOUNT_DMN, "approval.bpmn": approval})

    # isExecutable="false": not deployed to be started on its own, but it runs when called.
    assert list(bundle.processes) == ["commercial_offer"]
    assert "approval" in bundle.processes["commercial_offer"].subprocess_specs


# --- validate_paths -------------------------------------------------------------------------


def test_validate_paths_reports_on_a_whole_folder_without_raising():
    problems = validate_paths([HOSTILE])

    reported = {Path(problem.file).name for problem in problems}
    assert reported == {path.name for path in HOSTILE.iterdir()}


def test_validate_paths_reports_missing_paths_and_reads_files_it_is_given(tmp_path):
    good = tmp_path / "offer.bpmn"
    good.write_bytes(OFFER_BPMN)
    (tmp_path / "discount.dmn").write_bytes(DISCOUNT_DMN)

    assert validate_paths([good, tmp_path / "discount.dmn"]) == []
    [missing] = validate_paths([tmp_path / "nowhere.bpmn"])
    assert missing.file == str(tmp_path / "nowhere.bpmn")
    assert "no such file" in missing.message


def test_validate_paths_does_not_read_more_of_a_file_than_it_may_accept(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 100)
    given = {}

    def remember_files(files):
        given.update(files)
        return Bundle({}, {})

    monkeypatch.setattr(validation, "load_bundle", remember_files)
    big = tmp_path / "big.bpmn"
    big.write_bytes(OFFER_BPMN)

    validate_paths([big])

    assert len(given[str(big)]) == 101  # enough to tell that it is too big


# --- The external corpora -------------------------------------------------------------------


def corpus_files() -> list:
    if not CORPORA.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_CORPORA))]
    return [pytest.param(path, id=str(path.relative_to(CORPORA))) for path in sorted(CORPORA.rglob("*.bpmn"))]


def corpus_bundle(path: Path) -> dict[str, bytes]:
    """The file together with the DMN files of its folder, so business rule tasks find their decisions."""
    files = [path, *sorted(path.parent.glob("*.dmn"))]
    return {str(file.relative_to(CORPORA)): file.read_bytes() for file in files}


@pytest.mark.parametrize("path", corpus_files())
def test_every_corpus_file_loads_or_is_explained(path):
    files = corpus_bundle(path)
    try:
        load_bundle(files)
    except BpmnValidationError as error:
        assert error.problems
        for problem in error.problems:
            assert problem.file in files
            assert problem.message
            assert "Traceback" not in problem.message
            assert not BARE_EXCEPTION.search(problem.message), str(problem)


@pytest.mark.skipif(not CORPORA.is_dir(), reason=NO_CORPORA)
def test_most_camunda_examples_load():
    examples = sorted((CORPORA / "camunda-bpm-examples").rglob("*.bpmn"))

    loaded = [path for path in examples if loads(corpus_bundle(path))]

    # SpiffWorkflow alone parses 53 of the 54; crmflow also refuses scripts that are not Python,
    # cron timers and call activities whose process is in another folder.
    assert len(loaded) >= 45, f"only {len(loaded)} of {len(examples)} Camunda examples load"


def loads(files: dict[str, bytes]) -> bool:
    try:
        load_bundle(files)
    except BpmnValidationError:
        return False
    return True
