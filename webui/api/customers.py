"""The API of the CRM: customers (search, the duplicate check, registering, the card),
interactions, deals and claims, through the CRM facade (processes/crm/).

As in the UI, the customer base is the company's: employees and managers (and admins)
use all of it; the facade enforces the rest (a deal for someone else needs their manager).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from processes.crm import CLAIM_REASONS, CardProcess, ClaimDraft, CustomerCard
from processes.customers import DECISION_ROLES, IMPORTANCE, ContactDraft, CustomerDraft
from processes.models import (
    Claim,
    ContactPerson,
    Customer,
    CustomerKind,
    CustomerStatus,
    Deal,
    DealKind,
    DealStatus,
    Interaction,
    InteractionKind,
    InteractionStatus,
    PartnerRole,
)
from processes.stages import STAGE_CODES, STAGES
from webui.access import Person, crm
from webui.api import api
from webui.api.errors import reader_locale
from webui.api.operations import STAFF, Parameter, note
from webui.api.schema import array, boolean, free_object, identifier, integer, number, obj, string
from webui.api.work import moment
from webui.metrics import engine_step

MAX_AMOUNT = 999_999_999_999.99  # deals.amount is NUMERIC(14, 2)
TAG = "Customers"

# -- schemas -----------------------------------------------------------------------------

CONTACT_FIELDS = {
    "name": string(300, min_length=1), "position": string(200, nullable=True),
    "decision_role": string(100, enum=DECISION_ROLES, nullable=True),
    "phones": array(string(40), max_items=10), "emails": array(string(320), max_items=10),
    "birthday": string(10, format="date", nullable=True),
}
CONTACT = api.schema("Contact", obj({"id": identifier(), **CONTACT_FIELDS}, required=("id", "name"),
                                    additional=True))
CUSTOMER = api.schema("Customer", obj({
    "id": identifier(), "kind": string(20, enum=tuple(k.value for k in CustomerKind)),
    "partner_role": string(20), "name": string(300), "inn": string(12, nullable=True), "status": string(20),
    "curator": string(150, nullable=True), "relationship_stage": string(100, nullable=True),
    "importance": string(20, nullable=True), "category": string(100, nullable=True),
    "phones": array(string(40)), "emails": array(string(320)),
    "properties": free_object("Free properties of the customer."),
    "created_at": string(40, format="date-time"),
    "contacts": array(CONTACT, description="Contact persons (not in search results)."),
}, required=("id", "kind", "name", "status"), additional=True))
DRAFT_FIELDS = {
    "name": string(300, min_length=1),
    "kind": string(20, enum=tuple(k.value for k in CustomerKind)),
    "partner_role": string(20, enum=tuple(r.value for r in PartnerRole)),
    "inn": string(20, nullable=True, description="Tax id: 10 digits (organisation) or 12 (person)."),
    "status": string(20, enum=tuple(s.value for s in CustomerStatus)),
    "relationship_stage": string(100, nullable=True),
    "importance": string(1, enum=IMPORTANCE, nullable=True),
    "category": string(100, nullable=True),
    "phones": array(string(40), max_items=10), "emails": array(string(320), max_items=10),
    "contacts": array(obj(CONTACT_FIELDS, required=("name",)), max_items=20),
}
CUSTOMER_DRAFT = api.schema("CustomerDraft", obj(DRAFT_FIELDS, required=("name",)))
NEW_CUSTOMER = api.schema("NewCustomer", obj({
    **DRAFT_FIELDS, "allow_duplicates": boolean("Register even if the check finds likely duplicates."),
}, required=("name",)))
DUPLICATE = api.schema("DuplicateCandidate", obj({
    "customer_id": identifier(), "name": string(300), "inn": string(12, nullable=True),
    "reasons": array(string(400), description="In the token user's language, e.g. “same INN 7707083893”."),
    "keys": array(obj({"kind": string(10, enum=("inn", "phone", "email", "name")), "value": string(320)},
                      required=("kind", "value")), description="What each reason is about, for programs."),
}, required=("customer_id", "name", "reasons"), additional=True))
REGISTRATION = api.schema("Registration", obj({
    "customer": CUSTOMER,
    "duplicates": array(DUPLICATE, description="What the check found, when registered deliberately."),
}, required=("customer", "duplicates"), additional=True))
CARD_PROCESS = api.schema("CustomerProcess", obj({
    "kind": string(20, description="typical, manual, project or claim"), "id": identifier(),
    "number": string(30, nullable=True), "title": string(300), "status": string(20),
    "stage": string(100, nullable=True), "responsible": string(150, nullable=True),
    "planned_end": string(10, format="date", nullable=True),
    "deviation_days": integer(nullable=True, description="Days behind the plan (negative: ahead)."),
    "next_step": string(300, nullable=True), "next_due": string(40, format="date-time", nullable=True),
    "days_left": integer(nullable=True, description="Until the next step's deadline (negative: overdue)."),
}, required=("kind", "id", "status"), additional=True))
CARD = api.schema("CustomerCard", obj({
    "customer": CUSTOMER, "summary": string(500), "processes": array(CARD_PROCESS),
}, required=("customer", "summary", "processes"), additional=True))
INTERACTION = api.schema("Interaction", obj({
    "id": identifier(), "customer_id": identifier(), "kind": string(20), "status": string(20),
    "subject": string(300), "notes": string(10_000, nullable=True), "at": string(40, format="date-time"),
    "employee": string(150, nullable=True), "contact_person_id": identifier(nullable=True),
    "deal_id": identifier(nullable=True), "claim_id": identifier(nullable=True),
}, required=("id", "customer_id", "kind", "status", "subject", "at"), additional=True))
DEAL = api.schema("Deal", obj({
    "id": identifier(), "number": string(30, nullable=True), "kind": string(20), "title": string(300),
    "customer_id": identifier(), "curator": string(150),
    "amount": string(20, nullable=True, description="Decimal, as text: \"150000.00\"."),
    "status": string(20, enum=tuple(s.value for s in DealStatus)), "current_stage": string(40, nullable=True),
    "stage_entered_at": string(40, format="date-time", nullable=True),
    "lost_reason": string(40, nullable=True), "instance_id": identifier(nullable=True),
    "created_at": string(40, format="date-time"), "closed_at": string(40, format="date-time", nullable=True),
    "plan": array(obj({"stage": string(40), "planned_end": string(10, format="date")}, additional=True),
                  description="The planned end of each stage."),
}, required=("id", "kind", "title", "customer_id", "status", "plan"), additional=True))
CLAIM = api.schema("Claim", obj({
    "id": identifier(), "number": string(30, nullable=True), "customer_id": identifier(),
    "complainant": string(300), "essence": string(10_000), "reason": string(100),
    "guilty_department": string(150, nullable=True), "guilty_employee": string(150, nullable=True),
    "deal_id": identifier(nullable=True), "status": string(20), "responsible_officer": string(150, nullable=True),
    "registered_at": string(40, format="date-time"), "registered_by": string(150, nullable=True),
    "response_due_at": string(40, format="date-time"), "resolution": string(20, nullable=True),
    "outcome": string(10_000, nullable=True), "resolved_at": string(40, format="date-time", nullable=True),
    "closed_at": string(40, format="date-time", nullable=True), "instance_id": identifier(nullable=True),
    "activities": array(obj({
        "id": identifier(), "owner": string(150), "due_on": string(10, format="date"), "description": string(10_000),
        "result": string(10_000, nullable=True), "done_at": string(40, format="date-time", nullable=True),
        "work_item_id": identifier(nullable=True),
    }, additional=True), description="The investigation plan."),
    "attachments": array(obj({"id": identifier(), "filename": string(255), "content_type": string(100),
                              "size": integer()}, additional=True)),
}, required=("id", "customer_id", "complainant", "essence", "reason", "status"), additional=True))

# -- payloads ----------------------------------------------------------------------------


def _contact_payload(contact: ContactPerson) -> dict[str, Any]:
    return {"id": contact.id, "name": contact.name, "position": contact.position,
            "decision_role": contact.decision_role, "phones": contact.phones or [], "emails": contact.emails or [],
            "birthday": contact.birthday.isoformat() if contact.birthday else None}


def customer_payload(customer: Customer, with_contacts: bool = True) -> dict[str, Any]:
    payload = {
        "id": customer.id, "kind": customer.kind, "partner_role": customer.partner_role, "name": customer.name,
        "inn": customer.inn, "status": customer.status,
        "curator": customer.curator.username if customer.curator else None,
        "relationship_stage": customer.relationship_stage, "importance": customer.importance,
        "category": customer.category, "phones": customer.phones or [], "emails": customer.emails or [],
        "properties": customer.properties or {}, "created_at": moment(customer.created_at),
    }
    if with_contacts:
        payload["contacts"] = [_contact_payload(contact) for contact in customer.contacts]
    return payload


def _duplicate_payload(candidate) -> dict[str, Any]:
    locale = reader_locale()
    return {"customer_id": candidate.customer_id, "name": candidate.name, "inn": candidate.inn,
            "reasons": [reason.render(locale) for reason in candidate.reasons],
            "keys": [{"kind": reason.kind, "value": reason.value} for reason in candidate.reasons]}


def _card_process_payload(process: CardProcess) -> dict[str, Any]:
    return {"kind": process.kind, "id": process.id, "number": process.number, "title": process.title,
            "status": process.status, "stage": process.stage, "responsible": process.responsible,
            "planned_end": process.planned_end.isoformat() if process.planned_end else None,
            "deviation_days": process.deviation_days, "next_step": process.next_step,
            "next_due": moment(process.next_due), "days_left": process.days_left}


def _card_payload(card: CustomerCard) -> dict[str, Any]:
    return {"customer": customer_payload(card.customer), "summary": card.summary.render(reader_locale()),
            "processes": [_card_process_payload(process) for process in card.processes]}


def _interaction_payload(interaction: Interaction) -> dict[str, Any]:
    return {"id": interaction.id, "customer_id": interaction.customer_id, "kind": interaction.kind,
            "status": interaction.status, "subject": interaction.subject, "notes": interaction.notes,
            "at": moment(interaction.at), "employee": interaction.employee,
            "contact_person_id": interaction.contact_person_id, "deal_id": interaction.deal_id,
            "claim_id": interaction.claim_id}


def _deal_payload(deal: Deal) -> dict[str, Any]:
    return {"id": deal.id, "number": deal.number, "kind": deal.kind, "title": deal.title,
            "customer_id": deal.customer_id, "curator": deal.curator.username,
            "amount": str(deal.amount) if deal.amount is not None else None, "status": deal.status,
            "current_stage": deal.current_stage, "stage_entered_at": moment(deal.stage_entered_at),
            "lost_reason": deal.lost_reason, "instance_id": deal.instance_id, "created_at": moment(deal.created_at),
            "closed_at": moment(deal.closed_at),
            "plan": [{"stage": plan.stage, "planned_end": plan.planned_end.isoformat()} for plan in deal.plan]}


def _claim_payload(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id, "number": claim.number, "customer_id": claim.customer_id, "complainant": claim.complainant,
        "essence": claim.essence, "reason": claim.reason, "guilty_department": claim.guilty_department,
        "guilty_employee": claim.guilty_employee.username if claim.guilty_employee else None,
        "deal_id": claim.deal_id, "status": claim.status, "responsible_officer": claim.responsible_officer,
        "registered_at": moment(claim.registered_at), "registered_by": claim.registered_by,
        "response_due_at": moment(claim.response_due_at), "resolution": claim.resolution, "outcome": claim.outcome,
        "resolved_at": moment(claim.resolved_at), "closed_at": moment(claim.closed_at),
        "instance_id": claim.instance_id,
        "activities": [{"id": a.id, "owner": a.owner, "due_on": a.due_on.isoformat(), "description": a.description,
                        "result": a.result, "done_at": moment(a.done_at), "work_item_id": a.work_item_id}
                       for a in claim.activities],
        "attachments": [{"id": a.id, "filename": a.filename, "content_type": a.content_type, "size": a.size}
                        for a in claim.attachments],
    }


def _draft(body: dict[str, Any], curator: str) -> CustomerDraft:
    contacts = [ContactDraft(name=c["name"], position=c.get("position"), decision_role=c.get("decision_role"),
                             phones=c.get("phones") or [], emails=c.get("emails") or [], birthday=c.get("birthday"))
                for c in body.get("contacts") or []]
    defaults = CustomerDraft(name="")
    return CustomerDraft(
        name=body["name"], kind=body.get("kind") or defaults.kind,
        partner_role=body.get("partner_role") or defaults.partner_role, inn=body.get("inn"),
        status=body.get("status") or defaults.status, curator=curator,
        relationship_stage=body.get("relationship_stage"), importance=body.get("importance"),
        category=body.get("category"), phones=body.get("phones") or [], emails=body.get("emails") or [],
        contacts=contacts)


# -- customers ------------------------------------------------------------------------------


@api.operation("GET", "/customers", "searchCustomers", tag=TAG, roles=STAFF,
               summary="Find customers by INN, phone or e-mail (exactly) or by a part of the name",
               response=obj({"items": array(CUSTOMER)}, required=("items",), additional=True),
               query=(Parameter("q", string(100, min_length=1), "What to look for.", required=True),
                      Parameter("limit", integer(minimum=1, maximum=50), "At most this many.", default=20)))
def search_customers(person: Person, query: dict[str, Any]):
    found = crm().search_customers(query["q"], limit=query["limit"])
    return {"items": [customer_payload(customer, with_contacts=False) for customer in found]}


@api.operation("POST", "/customers/duplicates", "findDuplicateCustomers", tag=TAG, roles=STAFF,
               summary="The duplicate check alone: customers sharing the name, INN, a phone or an e-mail",
               body=CUSTOMER_DRAFT, response=obj({"candidates": array(DUPLICATE)}, required=("candidates",),
                                                 additional=True))
def find_duplicates(person: Person, body: dict[str, Any]):
    candidates = crm().find_duplicates(_draft(body, person.username))
    return {"candidates": [_duplicate_payload(candidate) for candidate in candidates]}


@api.operation(
    "POST", "/customers", "registerCustomer", tag=TAG, roles=STAFF, status=201, conflicts=True,
    summary="Register a customer, with the duplicate check",
    description="Likely duplicates refuse the registration with 409 `duplicate_customer` listing them; send "
                "`allow_duplicates: true` to register deliberately anyway. The caller becomes the curator.",
    body=NEW_CUSTOMER,
    response=REGISTRATION,
)
def register_customer(person: Person, body: dict[str, Any]):
    with engine_step("register_customer"):
        registration = crm().register_customer(_draft(body, person.username), person.username,
                                               allow_duplicates=bool(body.get("allow_duplicates")))
    return {"customer": customer_payload(registration.customer),
            "duplicates": [_duplicate_payload(candidate) for candidate in registration.duplicates]}


@api.operation("GET", "/customers/<int:customer_id>", "getCustomer", tag=TAG, roles=STAFF,
               summary="The customer card: the customer, its contacts and all its deals and claims",
               response=CARD)
def get_customer(person: Person, customer_id: int):
    return _card_payload(crm().customer_card(customer_id))


@api.operation("GET", "/customers/<int:customer_id>/interactions", "listInteractions", tag=TAG, roles=STAFF,
               summary="The customer's timeline of interactions, newest first",
               response=obj({"items": array(INTERACTION)}, required=("items",), additional=True),
               query=(Parameter("deal_id", identifier(), "Only those of one deal."),
                      Parameter("claim_id", identifier(), "Only those of one claim.")))
def list_interactions(person: Person, customer_id: int, query: dict[str, Any]):
    crm().customer(customer_id)  # 404 for an unknown customer rather than an empty timeline
    timeline = crm().timeline(customer_id, deal_id=query["deal_id"], claim_id=query["claim_id"])
    return {"items": [_interaction_payload(interaction) for interaction in timeline]}


@api.operation(
    "POST", "/customers/<int:customer_id>/interactions", "logInteraction", tag=TAG, roles=STAFF, status=201,
    summary="Record a meeting, call, e-mail or planned interaction on the customer's timeline",
    response=INTERACTION,
    body=obj({
        "kind": string(20, enum=tuple(k.value for k in InteractionKind)),
        "subject": string(300, min_length=1),
        "status": string(20, enum=tuple(s.value for s in InteractionStatus)),
        "at": string(40, format="date-time", nullable=True, description="When it happened or is planned (now)."),
        "notes": string(10_000, nullable=True),
        "deal_id": identifier(nullable=True), "claim_id": identifier(nullable=True),
        "contact_person_id": identifier(nullable=True),
    }, required=("kind", "subject")),
)
def log_interaction(person: Person, customer_id: int, body: dict[str, Any]):
    with engine_step("log_interaction"):
        interaction = crm().log_interaction(
            customer_id, body["kind"], body["subject"], person.username,
            status=body.get("status") or InteractionStatus.DONE, at=body.get("at"), notes=body.get("notes"),
            deal_id=body.get("deal_id"), claim_id=body.get("claim_id"),
            contact_person_id=body.get("contact_person_id"))
    return _interaction_payload(interaction)


# -- deals and claims -------------------------------------------------------------------------


@api.operation(
    "POST", "/customers/<int:customer_id>/deals", "startDeal", tag="Deals", roles=STAFF, status=201,
    summary="Open a deal: a typical sale, a deal with manual stages, or a project deal",
    description="A typical or manual deal starts its process. The curator is the caller unless a manager "
                "opens it for someone they manage.",
    response=DEAL,
    body=obj({
        "kind": string(20, enum=tuple(k.value for k in DealKind)),
        "title": string(300, min_length=1),
        "amount": number(minimum=0, maximum=MAX_AMOUNT, nullable=True),
        "curator": string(150, min_length=1, nullable=True, description="Default: the caller."),
        "first_stage": string(40, enum=STAGE_CODES, description="Manual deals only; default first_contact."),
    }, required=("kind", "title")),
)
def start_deal(person: Person, customer_id: int, body: dict[str, Any]):
    amount = body.get("amount")
    with engine_step("start_deal"):
        deal = crm().start_deal(body["kind"], customer_id, body.get("curator") or person.username, body["title"],
                                person.username, amount=Decimal(str(amount)) if amount is not None else None,
                                first_stage=body.get("first_stage") or STAGES[0].code)
    note(instance_id=deal.instance_id)
    return _deal_payload(deal)


@api.operation("GET", "/deals/<int:deal_id>", "getDeal", tag="Deals", roles=STAFF,
               summary="A deal with its stage plan", response=DEAL)
def get_deal(person: Person, deal_id: int):
    deal = crm().deal(deal_id)
    note(instance_id=deal.instance_id)
    return _deal_payload(deal)


@api.operation(
    "POST", "/customers/<int:customer_id>/claims", "registerClaim", tag="Claims", roles=STAFF, status=201,
    summary="Register a customer's claim and start its investigation",
    description="Attachments are added in the UI; the API takes the claim itself.",
    response=CLAIM,
    body=obj({
        "complainant": string(300, min_length=1), "essence": string(10_000, min_length=1),
        "reason": string(40, enum=CLAIM_REASONS),
        "guilty_department": string(150, nullable=True), "guilty_employee": string(150, nullable=True),
        "deal_id": identifier(nullable=True),
    }, required=("complainant", "essence", "reason")),
)
def register_claim(person: Person, customer_id: int, body: dict[str, Any]):
    draft = ClaimDraft(customer_id=customer_id, complainant=body["complainant"], essence=body["essence"],
                       reason=body["reason"], guilty_department=body.get("guilty_department"),
                       guilty_employee=body.get("guilty_employee"), deal_id=body.get("deal_id"))
    with engine_step("register_claim"):
        claim = crm().register_claim(draft, person.username)
    note(instance_id=claim.instance_id)
    return _claim_payload(claim)


@api.operation("GET", "/claims/<int:claim_id>", "getClaim", tag="Claims", roles=STAFF,
               summary="A claim with its investigation plan and resolution", response=CLAIM)
def get_claim(person: Person, claim_id: int):
    claim = crm().claim(claim_id)
    note(instance_id=claim.instance_id)
    return _claim_payload(claim)
