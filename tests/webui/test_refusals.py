"""Every refusal the CRM facade and the engine can raise, sent through the HTML form that can
cause it: the answer's status, the message beside the field it names (or at the top of the
form when it names none), and not one row written.

Where the refusal comes from (``raise ... `` in processes/ and engine/) is said with each
case; a form's own check comes first where the browser can be told the rule (a required
field, a length, a date, a choice from the domain's list), and then it is the form's
message that is shown. Refusals no HTML form can cause are listed at the end of this
module with the reason."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

import pytest

from processes.crm import ClaimDraft
from processes.crm.definitions import MAX_ATTACHMENT_BYTES
from support import TEST_BPMN
from support.office import GOOD_REQUEST, as_user, crm_of, database_rows, register_customer, start_approval

OTHER_INN = "7728168971"  # a valid INN of a second customer


def message_at(html: str, where: str) -> str:
    """The text beside a field (``data-field-error``) or at the top of a form (``data-form-error``)."""
    found = re.findall(rf'data-(?:field|form)-error="{re.escape(where)}">(.*?)</(?:p|div|ul)>', html, re.S)
    return unescape(" ".join(found))


def refused(office, client, url: str, data: dict, status: int, where: str, says: str, **post):
    """POST ``data`` to ``url``: refused with ``status``, ``says`` at ``where``, nothing written."""
    before = database_rows(office)
    response = client.post(url, data=data, **post)
    html = response.get_data(as_text=True)
    assert response.status_code == status, html[-3000:]
    assert says in message_at(html, where), f"{says!r} not at {where!r}: {message_at(html, where)!r}"
    assert database_rows(office) == before, "a refused request wrote to the database"
    return response


def run(subtests, office, client, url: str, cases, **post) -> None:
    for name, data, status, where, says in cases:
        with subtests.test(name):
            refused(office, client, url, data, status, where, says, **post)


# -- customers -------------------------------------------------------------------------------


REGISTRATION = {"name": "Vector JSC", "inn": OTHER_INN, "kind": "organisation", "phones": "", "emails": ""}


def test_registering_a_customer(app, office, subtests):
    register_customer(app)
    run(subtests, office, as_user(app, "ann"), "/customers/new", [
        # processes/customers.py check_draft: InvalidData("customer", ...)
        ("no name", {**REGISTRATION, "name": " "}, 422, "name", "This field is required."),
        ("a name longer than its column", {**REGISTRATION, "name": "x" * 301}, 422, "name", "at most 300"),
        ("an unknown kind", {**REGISTRATION, "kind": "robot"}, 422, "kind", "Not a valid choice"),
        ("a bad INN", {**REGISTRATION, "inn": "123"}, 422, "inn", "must be 10 digits"),
        ("a mistyped INN", {**REGISTRATION, "inn": "7707083894"}, 422, "inn", "wrong check digit"),
        ("a bad phone", {**REGISTRATION, "phones": "+7 495 123-45-67\n12"}, 422, "phones", "is not a phone number"),
        ("a bad e-mail", {**REGISTRATION, "emails": "info@vector.example, nope"}, 422, "emails",
         "is not an e-mail address"),
        ("a category longer than its column", {**REGISTRATION, "category": "x" * 101}, 422, "category",
         "at most 100"),
        # processes/crm/registry.py register_customer: DuplicateCustomer
        ("a likely duplicate", {**REGISTRATION, "inn": "7707083893"}, 409, "customer", "same INN 7707083893"),
    ])


def test_editing_a_customer(app, office, subtests):
    register_customer(app)
    other = register_customer(app, name="Vector JSC", inn=OTHER_INN, email="info@vector.example")
    current = {"name": "Vector JSC", "inn": OTHER_INN, "kind": "organisation", "partner_role": "customer",
               "status": "potential", "importance": "", "emails": "info@vector.example"}
    client = as_user(app, "ann")
    assert 'value="Vector JSC"' in client.get(f"/customers/{other.id}/edit").get_data(as_text=True)
    run(subtests, office, client, f"/customers/{other.id}/edit", [
        # processes/customers.py check_draft
        ("no name", {**current, "name": ""}, 422, "name", "This field is required."),
        ("an unknown partner role", {**current, "partner_role": "friend"}, 422, "partner_role", "Not a valid choice"),
        ("an unknown status", {**current, "status": "vip"}, 422, "status", "Not a valid choice"),
        ("an unknown importance", {**current, "importance": "Z"}, 422, "importance", "Not a valid choice"),
        ("a bad INN", {**current, "inn": "12"}, 422, "inn", "must be 10 digits"),
        ("a relationship stage longer than its column", {**current, "relationship_stage": "x" * 101}, 422,
         "relationship_stage", "at most 100"),
        # processes/crm/registry.py update_customer: DuplicateCustomer
        ("a likely duplicate", {**current, "inn": "7707083893"}, 409, "customer", "same INN 7707083893"),
    ])
    # processes/crm/registry.py update_customer: NotFound
    assert client.get("/customers/999999/edit").status_code == 404
    assert client.post("/customers/999999/edit", data=current).status_code == 404


def test_adding_a_contact_person(app, office, subtests):
    customer = register_customer(app)
    run(subtests, office, as_user(app, "ann"), f"/customers/{customer.id}/contacts", [
        # processes/customers.py check_draft, contacts[1].*
        ("no name", {"name": ""}, 422, "contact.name", "This field is required."),
        ("an unknown role in decisions", {"name": "Ivan", "decision_role": "boss"}, 422, "contact.decision_role",
         "Not a valid choice"),
        ("a bad phone", {"name": "Ivan", "phones": "12"}, 422, "contact.phones", "is not a phone number"),
        ("a bad e-mail", {"name": "Ivan", "emails": "ivan@"}, 422, "contact.emails", "is not an e-mail address"),
        ("a birthday that is no date", {"name": "Ivan", "birthday": "spring"}, 422, "contact.birthday",
         "spring is not a date"),
        ("a position longer than its column", {"name": "Ivan", "position": "x" * 201}, 422, "contact.position",
         "at most 200"),
    ])


def test_the_card_forms_of_a_customer_who_is_not_there_answer_404(app, office):
    client = as_user(app, "ann")
    # processes/crm/base.py get_record and registry.py: NotFound
    for form, data in (("interactions", {"kind": "note", "status": "done", "subject": "x"}),
                       ("deals", {"kind": "project", "title": "x"}), ("contacts", {"name": "Ivan"}),
                       ("claims", {"complainant": "Ivan", "reason": "quality", "essence": "x"})):
        before = database_rows(office)
        response = client.post(f"/customers/999999/{form}", data=data)
        assert response.status_code == 404, form
        assert "There is no customer 999999" in response.get_data(as_text=True)
        assert database_rows(office) == before


def test_logging_an_interaction(app, office, subtests):
    customer = register_customer(app)
    good = {"kind": "call_out", "status": "done", "subject": "Asked about prices"}
    run(subtests, office, as_user(app, "ann"), f"/customers/{customer.id}/interactions", [
        # processes/crm/registry.py log_interaction: InvalidData("interaction", ...)
        ("an unknown kind", {**good, "kind": "telepathy"}, 422, "interaction.kind", "Not a valid choice"),
        ("an unknown status", {**good, "status": "maybe"}, 422, "interaction.status", "Not a valid choice"),
        ("no subject", {**good, "subject": "  "}, 422, "interaction.subject", "This field is required."),
        ("a subject longer than its column", {**good, "subject": "x" * 301}, 422, "interaction.subject",
         "at most 300"),
    ])


def test_starting_a_deal(app, office, subtests):
    customer = register_customer(app)
    good = {"kind": "typical", "title": "Spring order", "amount": "120 000"}
    client = as_user(app, "ann")
    response = refused(office, client, f"/customers/{customer.id}/deals", {**good, "amount": "lots"}, 422,
                       "deal.amount", "lots is not an amount of money")
    assert 'value="lots"' in response.get_data(as_text=True)  # what was typed is kept
    run(subtests, office, client, f"/customers/{customer.id}/deals", [
        # processes/crm/deals.py start_deal: InvalidData("deal", ...)
        ("an unknown kind", {**good, "kind": "barter"}, 422, "deal.kind", "Not a valid choice"),
        ("no title", {**good, "title": ""}, 422, "deal.title", "This field is required."),
        ("a title longer than its column", {**good, "title": "x" * 301}, 422, "deal.title", "at most 300"),
        ("an amount that is none", {**good, "amount": "lots"}, 422, "deal.amount", "lots is not an amount of money"),
        ("a negative amount", {**good, "amount": "-5"}, 422, "deal.amount", "-5 is not an amount of money"),
        ("an amount larger than its column", {**good, "amount": "1 000 000 000 000"}, 422, "deal.amount",
         "Enter an amount of at most 999,999,999,999.99."),
    ])


CLAIM = {"complainant": "Ivan Petrov", "reason": "quality", "essence": "Scratched panels"}


def files(*named: tuple[str, bytes]) -> list:
    return [(io.BytesIO(content), name) for name, content in named]


def claim_cases(where: str):
    """The refusals of registering a claim (processes/crm/claims.py register_claim:
    InvalidData("claim", ...)); ``where`` prefixes the markers of the page's forms."""
    return [
        ("no complainant", {**CLAIM, "complainant": ""}, 422, f"{where}complainant", "This field is required."),
        ("no essence", {**CLAIM, "essence": ""}, 422, f"{where}essence", "This field is required."),
        ("an unknown reason", {**CLAIM, "reason": "boredom"}, 422, f"{where}reason", "Not a valid choice"),
        ("a file with a path for a name", {**CLAIM, "attachments": files(("../etc/passwd", b"x"))}, 422,
         f"{where}attachments", "attachments[1]: '../etc/passwd' is not a plain file name"),
        ("a file too large", {**CLAIM, "attachments": files(("scan.pdf", b"x" * (MAX_ATTACHMENT_BYTES + 1)))}, 422,
         f"{where}attachments", "scan.pdf is larger than 10 MB"),
        ("a file name longer than its column", {**CLAIM, "attachments": files(("x" * 252 + ".pdf", b"x"))}, 422,
         f"{where}attachments", "the name is longer than 255 characters"),
        ("too many files", {**CLAIM, "attachments": files(*((f"{n}.jpg", b"x") for n in range(6)))}, 422,
         f"{where}attachments", "Attach at most 5 files."),
    ]


def test_registering_a_claim(app, office, subtests):
    customer = register_customer(app)
    run(subtests, office, as_user(app, "ann"), f"/customers/{customer.id}/claims", claim_cases("claim."),
        content_type="multipart/form-data")


def test_a_customer_filing_a_claim_themselves(app, office, subtests):
    register_customer(app)
    identified = {**CLAIM, "identity": "info@romashka.example"}
    cases = [
        # webui/customers.py self_service: who the customer is
        ("no identity", {**identified, "identity": ""}, 422, "identity", "Enter the e-mail, phone or tax id"),
        ("a part of a name", {**identified, "identity": "romashka"}, 422, "identity",
         "We could not find a customer"),
        *(( name, {**data, "identity": "info@romashka.example"}, status, where, says)
          for name, data, status, where, says in claim_cases("")),
    ]
    for number, (name, data, status, where, says) in enumerate(cases):
        client = app.test_client()
        # Every POST counts against the address's hourly limit: one address per case.
        client.environ_base.update(HTTP_ACCEPT_LANGUAGE="en", REMOTE_ADDR=f"203.0.113.{number + 1}")
        with subtests.test(name):
            refused(office, client, "/claim", data, status, where, says, content_type="multipart/form-data")


# -- deals -------------------------------------------------------------------------------------


@pytest.fixture
def deals(app, clock):
    """A typical deal, a project deal with an open task, and a project deal closed as won."""
    crm = crm_of(app)
    customer = register_customer(app)
    typical = crm.start_deal("typical", customer.id, "ann", "Spring order", "ann")
    project = crm.start_deal("project", customer.id, "ann", "Warehouse fit-out", "ann")
    crm.add_project_task(project.id, "Agree the layout", "bob", clock.now + timedelta(days=3), "ann")
    closed = crm.start_deal("project", customer.id, "ann", "Old fit-out", "ann")
    crm.close_project_deal(closed.id, "won", "ann")
    return typical, project, closed


def test_changing_the_stage_plan(app, office, clock, deals, subtests):
    typical, project, _closed = deals
    later = (clock.now + timedelta(days=30)).date().isoformat()
    client = as_user(app, "ann")
    run(subtests, office, client, f"/deals/{typical.id}/plan", [
        ("a date that is none", {"plan-contract": "next Tuesday"}, 422, "plan.contract", "next Tuesday is not a date"),
    ])
    # processes/crm/deals.py set_stage_plan: NotAuthorized, and InvalidData for a deal without stages
    refused(office, as_user(app, "eve"), f"/deals/{typical.id}/plan", {"plan-contract": later}, 403, "deal",
            "Only the curator of D-")
    refused(office, client, f"/deals/{project.id}/plan", {"plan-contract": later}, 422, "deal",
            "a project deal has no stages")
    # processes/crm/deals.py deal: NotFound
    assert client.post("/deals/999999/plan", data={"plan-contract": later}).status_code == 404


def test_adding_a_task_to_a_project_deal(app, office, clock, deals, subtests):
    typical, project, closed = deals
    due = (clock.now + timedelta(days=3)).date().isoformat()
    good = {"title": "Order the racks", "owner": "bob", "due_on": due, "due_time": "11:00"}
    client = as_user(app, "ann")
    # processes/crm/deals.py add_project_task: InvalidData("project task", ...)
    run(subtests, office, client, f"/deals/{project.id}/tasks", [
        ("no title", {**good, "title": ""}, 422, "task.title", "This field is required."),
        ("a title longer than its column", {**good, "title": "x" * 301}, 422, "task.title", "at most 300"),
        ("an owner who is no user", {**good, "owner": "nobody"}, 422, "task.owner", "Not a valid choice"),
        ("no due date", {**good, "due_on": ""}, 422, "task.due_on", "This field is required."),
        ("a due date that is none", {**good, "due_on": "soon"}, 422, "task.due_on", "soon is not a date"),
        ("a time that is none", {**good, "due_time": "25:00"}, 422, "task.due_time", "25:00 is not a time of day"),
    ])
    run(subtests, office, client, f"/deals/{typical.id}/tasks", [
        ("a deal with a process", good, 422, "deal", "its steps come from its process"),
    ])
    run(subtests, office, client, f"/deals/{closed.id}/tasks", [
        ("a closed deal", good, 422, "deal", "is closed (won)"),
    ])
    # processes/crm/deals.py add_project_task: NotAuthorized
    refused(office, as_user(app, "eve"), f"/deals/{project.id}/tasks", good, 403, "deal", "Only the curator of D-")


def test_closing_a_project_deal(app, office, deals, subtests):
    typical, project, closed = deals
    client = as_user(app, "ann")
    # processes/crm/deals.py close_project_deal: InvalidData("deal", ...)
    run(subtests, office, client, f"/deals/{project.id}/close", [
        ("an unknown outcome", {"outcome": "draw"}, 422, "close.outcome", "Not a valid choice"),
        ("lost without a reason", {"outcome": "lost", "lost_reason": ""}, 422, "close.lost_reason",
         "Choose why the deal was lost."),
        ("an unknown reason", {"outcome": "lost", "lost_reason": "fate"}, 422, "close.lost_reason",
         "Not a valid choice"),
        ("a task still open", {"outcome": "won"}, 422, "close", "1 task is still open"),
    ])
    run(subtests, office, client, f"/deals/{typical.id}/close", [
        ("a deal with a process", {"outcome": "won"}, 422, "deal", "only a project deal is closed by hand"),
    ])
    run(subtests, office, client, f"/deals/{closed.id}/close", [
        ("a closed deal", {"outcome": "lost", "lost_reason": "price"}, 422, "deal", "is already won"),
    ])
    # processes/crm/deals.py close_project_deal: NotAuthorized
    refused(office, as_user(app, "eve"), f"/deals/{project.id}/close", {"outcome": "won"}, 403, "deal",
            "Only the curator of D-")


# -- the task form -------------------------------------------------------------------------------


def test_completing_a_step(app, office, subtests):
    _, item = start_approval(office)
    url = f"/items/{item.id}"
    # engine/bpmn/forms.py clean_submission: InvalidFormData
    run(subtests, office, as_user(app, "ann"), url, [
        ("a value above the maximum", {"version": "1", **GOOD_REQUEST, "discount": "99"}, 422, "discount",
         "Must be at most 50."),
        ("a required value missing", {"version": "1", **GOOD_REQUEST, "discount": ""}, 422, "discount",
         "Is required."),
        ("no whole number", {"version": "1", **GOOD_REQUEST, "discount": "ten"}, 422, "discount",
         "Must be a whole number."),
        ("a date that is none", {"version": "1", **GOOD_REQUEST, "valid_until": "soon"}, 422, "valid_until",
         "Must be a date such as 2026-12-31."),
        ("no option of the list", {"version": "1", **GOOD_REQUEST, "channel": "pigeon"}, 422, "channel",
         "Must be one of email, phone."),
        # engine/runtime/facade.py complete: StaleWorkItem
        ("a page older than the item", {"version": "0", **GOOD_REQUEST}, 409, "item", "changed while you had it open"),
    ])
    # engine/runtime/facade.py complete: NotAuthorized (boss may see ann's item, not do it)
    refused(office, as_user(app, "boss"), url, {"version": "1", **GOOD_REQUEST}, 403, "item", "is assigned to")


def test_a_step_whose_script_fails(app, office):
    office.deploy([TEST_BPMN / "failing_script.bpmn"], deployed_by="dora")
    instance = office.start("failing_script", {})
    [item] = office.work_items(instance_id=instance.id)
    # engine/runtime/step.py: ProcessFailed, naming the BPMN element
    refused(office, as_user(app, "ann"), f"/items/{item.id}", {"version": str(item.version), "amount": "0"}, 422,
            "item", "Compute share")


def test_a_crm_rule_of_a_step_refuses_on_the_task_form(app, office, clock):
    """The claim's record follows its process in the step's transaction (processes/crm/
    following.py): its refusals come back from completing the step."""
    customer = register_customer(app)
    crm_of(app).register_claim(ClaimDraft(customer.id, "Ivan", "Wet boxes", "damaged"), "ann")
    [triage] = office.work_items(candidate_group="heads")
    boss = as_user(app, "boss")
    # follow_claim: InvalidData("triage", {"responsible_officer": ...})
    response = refused(office, boss, f"/items/{triage.id}", {"version": str(triage.version),
                                                             "responsible_officer": "nobody"},
                       422, "responsible_officer", "there is no active crmflow user 'nobody'")
    assert 'value="nobody"' in response.get_data(as_text=True)  # what was typed is kept
    office.complete(triage.id, {"responsible_officer": "boss"}, "boss")
    [plan] = office.work_items(assignee="boss")
    # follow_claim: InvalidData("investigation plan", {"plan line N": ...})
    past = (clock.now - timedelta(days=2)).date().isoformat()
    refused(office, boss, f"/items/{plan.id}", {"version": str(plan.version), "plan": f"sue; {past}; Look"},
            422, "plan", f"plan line 1: the due date {past} is in the past")


# -- the board -----------------------------------------------------------------------------------


def test_reassigning_from_the_board(app, office, subtests, monkeypatch):
    _, item = start_approval(office)
    boss = as_user(app, "boss")
    one = {"item_id": str(item.id), "confirmed": "yes"}
    run(subtests, office, boss, "/board/reassign", [
        ("nobody to receive it", {**one, "to_user": ""}, 422, "to_user", "Choose who receives the work"),
        ("someone outside the team", {**one, "to_user": "eve"}, 422, "to_user", "Choose who receives the work"),
        ("a reason longer than it may be", {**one, "to_user": "bob", "reason": "x" * 501}, 422, "reason",
         "at most 500"),
    ])

    # engine/runtime/work_items.py: WorkItemClosed, when someone completes it a moment before
    reassign = office.reassign

    def completed_first(item_id, *args, **kwargs):
        office.complete(item_id, GOOD_REQUEST, "ann")
        return reassign(item_id, *args, **kwargs)

    monkeypatch.setattr(office, "reassign", completed_first)
    response = boss.post("/board/reassign", data={**one, "to_user": "bob"})
    assert response.status_code == 409
    assert "is already completed by ann" in message_at(response.get_data(as_text=True), "reassign")
    assert office.work_item(item.id).completed_by.username == "ann"  # and not reassigned


# -- tokens, the designer's upload ---------------------------------------------------------------------


def test_making_an_api_token(app, office, subtests):
    run(subtests, office, as_user(app, "ann"), "/settings/tokens/", [
        ("no name", {"name": " ", "lifetime": "30"}, 422, "name", "Give the token a name"),
        ("a name too long", {"name": "x" * 101, "lifetime": "30"}, 422, "name", "Give the token a name"),
        ("an unknown lifetime", {"name": "phone", "lifetime": "forever"}, 422, "lifetime", "Not a valid choice"),
    ])


def test_uploading_bpmn(app, office, subtests):
    approval = (TEST_BPMN / "approval.bpmn").read_bytes()
    run(subtests, office, as_user(app, "dora"), "/processes/upload", [
        ("no file", {"action": "deploy"}, 400, "files", "Choose at least one .bpmn file."),
        ("a file of another kind", {"files": files(("notes.txt", b"hello")), "action": "deploy"}, 400, "files",
         "only .bpmn and .dmn files"),
        ("two files of one name", {"files": files(("a.bpmn", approval), ("a.bpmn", approval)), "action": "deploy"},
         400, "files", "a.bpmn: two files have this name."),
    ], content_type="multipart/form-data")


# Refusals of processes/ and engine/ that no HTML form can cause, and why:
# - deals.py start_deal "curator is no longer active", NotAuthorized "may not open a deal for":
#   the pages open a deal for the signed-in user, who is active; "first_stage": not on the form.
# - deals.py set_stage_plan "is not a sales stage": the form has a field per sales stage only.
# - registry.py update_customer "contacts", "curator": the edit form has neither.
# - registry.py log_interaction "at", "deal_id", "claim_id", "contact_person_id", and claims.py
#   register_claim "guilty_employee", "guilty_department", "deal_id": not on the forms.
# - claims.py plan_investigation: the REST API's; the page completes the step (following.py).
# - handover.py change_curator (E3): no page hands customers over yet.
# - engine/runtime/facade.py start ProcessNotDeployed: the process library is deployed with the
#   CRM; claim NotAuthorized "not a candidate", complete NotAuthorized "not a candidate": the
#   pages let only those who may see an item post to it (webui/visibility.py, a 403 first).
# - engine/runtime/work_items.py reassign to an inactive user, NotAuthorized "may not reassign":
#   the board offers active people of the manager's team and items of the department only.
