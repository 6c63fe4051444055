"""Claim investigation (C1-C4): registration, triage, a parallel plan, resolution, closing."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from engine.errors import InvalidFormData, NotFound
from engine.models import InstanceDeadline
from processes.crm import ClaimDraft, PlannedActivity
from processes.errors import InvalidData
from support.crm import draft, open_item, step


def register(crm, customer, **fields):
    values = dict(customer_id=customer.id, complainant="Пётр Иванов", essence="Half of the boxes arrived wet",
                  reason="damaged", guilty_department="warehouse", guilty_employee="ivan",
                  attachments=[("photo.jpg", "image/jpeg", b"\xff\xd8 jpeg bytes")])
    values.update(fields)
    return crm.register_claim(ClaimDraft(**values), by="olga")


def test_a_claim_with_a_three_activity_plan_runs_its_activities_in_parallel(crm, customer, clock):
    claim = register(crm, customer)
    assert claim.number == "CL-000001" and claim.status == "triage"
    assert claim.response_due_at.weekday() < 5 and claim.response_due_at > clock.now + timedelta(days=13)
    assert [(a.filename, a.size) for a in claim.attachments] == [("photo.jpg", 13)]
    triage = open_item(crm.engine, claim.instance_id)
    assert triage.name == "Triage the claim" and triage.candidate_groups == ["heads"]

    plan = step(crm.engine, claim.instance_id, "boss", responsible_officer="olga")
    assert plan.name == "Plan the investigation" and plan.assignee.username == "olga"
    assert crm.claim(claim.id).status == "investigation"
    due = clock.now.date() + timedelta(days=3)
    crm.plan_investigation(plan.id, [
        PlannedActivity("ivan", due, "Check the storage log"),
        PlannedActivity("bob", due + timedelta(days=1), "Call the carrier"),
        PlannedActivity("olga", due, "Inspect the returned boxes"),
    ], "olga")

    items = crm.engine.work_items(instance_id=claim.instance_id)
    assert sorted((i.assignee.username, i.due_at.date()) for i in items) == [
        ("bob", due + timedelta(days=1)), ("ivan", due), ("olga", due)]
    assert {i.name for i in items} == {"Carry out an investigation activity"}
    activities = crm.claim(claim.id).activities
    assert [(a.owner, a.description) for a in activities] == [
        ("ivan", "Check the storage log"), ("bob", "Call the carrier"), ("olga", "Inspect the returned boxes")]
    assert {a.work_item_id for a in activities} == {i.id for i in items}

    # In any order; the resolution waits for all three.
    by_owner = {i.assignee.username: i for i in items}
    for owner in ("olga", "bob"):
        crm.engine.complete(by_owner[owner].id, {"activity_result": f"{owner}: done"}, owner)
        assert crm.engine.work_items(instance_id=claim.instance_id, assignee="ivan")
        assert not [i for i in crm.engine.work_items(instance_id=claim.instance_id) if i.name == "Resolve the claim"]
    resolve = crm.engine.complete(by_owner["ivan"].id, {"activity_result": "stored outside"}, "ivan")
    assert resolve.status == "completed"
    resolve = open_item(crm.engine, claim.instance_id)
    assert resolve.name == "Resolve the claim"
    assert {a.owner: a.result for a in crm.claim(claim.id).activities} == {
        "ivan": "stored outside", "bob": "bob: done", "olga": "olga: done"}

    step(crm.engine, claim.instance_id, "olga", resolution="partly_satisfied", outcome_text="50% refund")
    assert crm.claim(claim.id).status == "informing"
    assert step(crm.engine, claim.instance_id, "olga", informed_by="call", customer_reaction="accepted") == []

    claim = crm.claim(claim.id)
    assert (claim.status, claim.resolution, claim.outcome) == ("closed", "partly_satisfied", "50% refund")
    assert claim.closed_at is not None and claim.responsible_officer == "olga"
    [informed] = crm.timeline(customer.id, claim_id=claim.id)
    assert informed.kind == "call_out" and informed.employee == "olga" and informed.notes == "accepted"


def test_a_clear_claim_is_resolved_without_an_investigation(crm, customer):
    claim = register(crm, customer, attachments=[])
    resolve = step(crm.engine, claim.instance_id, "boss", responsible_officer="oleg", skip_investigation=True)
    assert resolve.name == "Resolve the claim" and resolve.assignee.username == "oleg"
    step(crm.engine, claim.instance_id, "oleg", resolution="rejected", outcome_text="goods were fine on delivery")
    step(crm.engine, claim.instance_id, "oleg", informed_by="letter")
    claim = crm.claim(claim.id)
    assert (claim.status, claim.resolution, claim.activities) == ("closed", "rejected", [])


def test_a_claim_can_come_from_a_supplier_or_a_competitor(crm):
    for role, prefix in (("supplier", "500100732"), ("competitor", "780100001")):
        partner = crm.register_customer(draft(name=f"Partner {role}", inn_prefix=prefix, partner_role=role),
                                        by="olga").customer
        claim = register(crm, partner, guilty_employee=None, guilty_department=None, attachments=[])
        assert crm.claim(claim.id).customer.partner_role == role


def test_bad_registration_says_what_is_wrong_and_registers_nothing(crm, customer):
    with pytest.raises(InvalidData) as error:
        register(crm, customer, complainant=" ", reason="moon phase", guilty_employee="nobody",
                 guilty_department="mars", attachments=[("../etc/passwd", "text/plain", b"x")])
    assert set(error.value.errors) == {"complainant", "reason", "guilty_employee", "guilty_department",
                                       "attachments[1]"}
    with pytest.raises(NotFound):
        register(crm, customer, customer_id=999)
    assert crm.engine.work_items() == []


def test_triage_to_someone_who_is_not_a_user_is_refused(crm, customer):
    claim = register(crm, customer)
    triage = open_item(crm.engine, claim.instance_id)
    with pytest.raises(InvalidData) as error:
        crm.engine.complete(triage.id, {"responsible_officer": "ghost"}, "boss")
    assert "ghost" in str(error.value.errors["responsible_officer"])
    assert error.value.errors["responsible_officer"].code == "unknown_user"
    assert open_item(crm.engine, claim.instance_id).id == triage.id  # nothing moved
    assert crm.claim(claim.id).status == "triage"


def test_a_bad_plan_is_refused_line_by_line(crm, customer, clock):
    claim = register(crm, customer)
    plan = step(crm.engine, claim.instance_id, "boss", responsible_officer="olga")
    yesterday = clock.now.date() - timedelta(days=1)
    with pytest.raises(InvalidData) as error:
        crm.plan_investigation(plan.id, [PlannedActivity("ghost", date(2030, 1, 1), "x"),
                                         PlannedActivity("ivan", yesterday, "late")], "olga")
    assert set(error.value.errors) == {"plan line 1", "plan line 2"}
    # The same check guards the form itself (the web UI completes the step directly).
    with pytest.raises(InvalidData) as error:
        crm.engine.complete(plan.id, {"plan": "ivan; 2030-01-01\n\nbob; 2030-01-01; call"}, "olga")
    assert list(error.value.errors) == ["plan line 1"]
    with pytest.raises(InvalidFormData):
        crm.engine.complete(plan.id, {"plan": ""}, "olga")
    assert open_item(crm.engine, claim.instance_id).id == plan.id
    assert crm.claim(claim.id).activities == []


def test_the_claims_response_deadline_is_handed_to_the_escalation_service(crm, customer):
    claim = register(crm, customer, attachments=[])
    with crm.engine.reading() as session:
        [deadline] = session.scalars(select(InstanceDeadline).where(InstanceDeadline.instance_id == claim.instance_id))
    assert (deadline.name, deadline.team, deadline.due_at) == ("response", "claims", claim.response_due_at)
    assert deadline.met_at is None

    step(crm.engine, claim.instance_id, "boss", responsible_officer="oleg", skip_investigation=True)
    step(crm.engine, claim.instance_id, "oleg", resolution="satisfied", outcome_text="replaced")
    step(crm.engine, claim.instance_id, "oleg", informed_by="email")
    with crm.engine.reading() as session:
        assert session.get(InstanceDeadline, deadline.id).met_at is not None  # answered: no escalation
