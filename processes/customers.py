"""Customers (D1) and the duplicate check (D2), on a session the caller owns.

The facade (``processes.crm``) and the importer share these functions, so that a customer
registered by hand and one imported from a file are checked and stored the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import Session

from engine import people
from engine.errors import FieldError, InvalidValue
from engine.texts import Text
from processes.errors import REQUIRED, InvalidData, one_of
from processes.models import ContactPerson, Customer, CustomerKey, CustomerKind, CustomerStatus, PartnerRole
from processes.normalize import normal_email, normal_inn, normal_name, normal_phone
from processes.texts import _, ngettext

IMPORTANCE = ("A", "B", "C")
DECISION_ROLES = ("decision_maker", "influencer", "user", "gatekeeper", "other")


@dataclass
class ContactDraft:
    name: str
    position: str | None = None
    decision_role: str | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    birthday: date | None = None


@dataclass
class CustomerDraft:
    """What a person (or an import row) gives to register a customer."""

    name: str
    kind: str = CustomerKind.ORGANISATION
    partner_role: str = PartnerRole.CUSTOMER
    inn: str | None = None
    status: str = CustomerStatus.POTENTIAL
    curator: str | None = None
    relationship_stage: str | None = None
    importance: str | None = None
    category: str | None = None
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    addresses: list[dict[str, str]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    contacts: list[ContactDraft] = field(default_factory=list)


@dataclass(frozen=True)
class DuplicateReason:
    """Why a customer may be the same one: it shares this normalised key (``kind``: inn,
    phone, email or name)."""

    kind: str
    value: str

    @property
    def text(self) -> Text:
        if self.kind == "inn":
            return _("same INN %(value)s", value=self.value)
        if self.kind == "phone":
            return _("same phone +%(value)s", value=self.value)
        if self.kind == "email":
            return _("same e-mail %(value)s", value=self.value)
        return _("same name “%(value)s”", value=self.value)

    def render(self, locale=None) -> str:
        return self.text.render(locale)

    def __str__(self) -> str:
        return str(self.text)


def sorted_reasons(reasons) -> tuple[DuplicateReason, ...]:
    """In the order people have always read them: alphabetically, in English."""
    return tuple(sorted(reasons, key=str))


@dataclass(frozen=True)
class DuplicateCandidate:
    customer_id: int
    name: str
    inn: str | None
    reasons: tuple[DuplicateReason, ...]


@dataclass(frozen=True)
class CleanCustomer:
    """A checked draft: the values to store and the keys to look duplicates up by."""

    draft: CustomerDraft
    inn: str | None
    phones: list[str]
    emails: list[str]
    keys: list[tuple[str, str]]


def check_draft(draft: CustomerDraft) -> CleanCustomer:
    """The draft's values checked and normalised, or InvalidData naming every bad field."""
    errors: dict[str, FieldError] = {}
    name = (draft.name or "").strip()
    if not name:
        errors["name"] = REQUIRED
    elif len(name) > 300:
        errors["name"] = FieldError("too_long", ngettext("must be at most %(num)d character",
                                                         "must be at most %(num)d characters", 300))
    _choice(errors, "kind", draft.kind, [k.value for k in CustomerKind])
    _choice(errors, "partner_role", draft.partner_role, [r.value for r in PartnerRole])
    _choice(errors, "status", draft.status, [s.value for s in CustomerStatus])
    if draft.importance is not None:
        _choice(errors, "importance", draft.importance, list(IMPORTANCE))
    inn = None
    if draft.inn and draft.inn.strip():
        try:
            inn = normal_inn(draft.inn)
        except InvalidValue as bad:
            errors["inn"] = bad.problem
    phones = _normalised(errors, "phones", draft.phones, normal_phone)
    emails = _normalised(errors, "emails", draft.emails, normal_email)
    keys: list[tuple[str, str]] = []
    for index, contact in enumerate(draft.contacts):
        where = f"contacts[{index + 1}]"
        if not (contact.name or "").strip():
            errors[f"{where}.name"] = REQUIRED
        if contact.decision_role is not None:
            _choice(errors, f"{where}.decision_role", contact.decision_role, list(DECISION_ROLES))
        keys += [("phone", p) for p in _normalised(errors, f"{where}.phones", contact.phones, normal_phone)]
        keys += [("email", e) for e in _normalised(errors, f"{where}.emails", contact.emails, normal_email)]
    if errors:
        raise InvalidData("customer", errors)
    keys = [("name", normal_name(name))] + ([("inn", inn)] if inn else []) \
        + [("phone", p) for p in phones] + [("email", e) for e in emails] + keys
    keys = [(kind, value[:320]) for kind, value in keys]
    return CleanCustomer(draft, inn, phones, emails, list(dict.fromkeys(keys)))


def find_duplicates(session: Session, clean: CleanCustomer, limit: int = 20) -> list[DuplicateCandidate]:
    """Customers that share a normalised key with the draft, most reasons first.
    One indexed lookup of (kind, value) pairs: no scan of the customers."""
    rows = session.execute(
        select(CustomerKey.customer_id, CustomerKey.kind, CustomerKey.value).where(key_condition(clean.keys))
    ).all()
    reasons: dict[int, list[DuplicateReason]] = defaultdict(list)
    for customer_id, kind, value in rows:
        reasons[customer_id].append(DuplicateReason(kind, value))
    if not reasons:
        return []
    ranked = rank(reasons)[:limit]
    customers = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ranked)))}
    return [DuplicateCandidate(cid, customers[cid].name, customers[cid].inn, sorted_reasons(reasons[cid]))
            for cid in ranked]


def key_condition(keys: Iterable[tuple[str, str]]):
    """WHERE the (kind, value) pair is one of ``keys``, written per kind as
    ``kind = ? AND value IN (...)`` so that every backend uses the (kind, value) index
    (SQLite scans the table for a row-value IN)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, value in keys:
        by_kind[kind].append(value)
    return or_(*(and_(CustomerKey.kind == kind, CustomerKey.value.in_(values))
                 for kind, values in sorted(by_kind.items())))


def _weight(reasons: list[DuplicateReason]) -> int:
    # An INN is a strong sign; a shared name alone is the weakest.
    return sum(10 if r.kind == "inn" else 1 for r in reasons)


def create_customer(session: Session, clean: CleanCustomer, now: datetime, by: str | None) -> Customer:
    curator = people.get_user(session, clean.draft.curator) if clean.draft.curator else None
    customer = Customer(**customer_row(clean, now, by, curator.id if curator else None),
                        contacts=[ContactPerson(**row) for row in contact_rows(clean)])
    session.add(customer)
    session.flush()
    session.add_all(CustomerKey(customer_id=customer.id, kind=kind, value=value) for kind, value in clean.keys)
    session.flush()
    return customer


def replace_keys(session: Session, customer: Customer, clean: CleanCustomer) -> None:
    """The customer's keys after an edit: its own (from ``clean``) and its contacts'."""
    keys = list(clean.keys)
    for contact in customer.contacts:
        keys += [("phone", p) for p in contact.phones] + [("email", e) for e in contact.emails]
    session.execute(delete(CustomerKey).where(CustomerKey.customer_id == customer.id))
    session.add_all(CustomerKey(customer_id=customer.id, kind=kind, value=value[:320])
                    for kind, value in dict.fromkeys(keys))


def customer_row(clean: CleanCustomer, now: datetime, by: str | None, curator_id: int | None) -> dict[str, Any]:
    """The customers row of a checked draft (the importer inserts these in bulk)."""
    draft = clean.draft
    return dict(
        kind=draft.kind,
        partner_role=draft.partner_role,
        name=draft.name.strip(),
        inn=clean.inn,
        status=draft.status,
        curator_id=curator_id,
        relationship_stage=draft.relationship_stage,
        importance=draft.importance,
        category=draft.category,
        phones=clean.phones,
        emails=clean.emails,
        addresses=list(draft.addresses),
        properties=dict(draft.properties),
        created_at=now,
        created_by=by,
    )


def contact_rows(clean: CleanCustomer) -> list[dict[str, Any]]:
    return [dict(name=c.name.strip(), position=c.position, decision_role=c.decision_role,
                 phones=[normal_phone(p) for p in c.phones if str(p).strip()],
                 emails=[normal_email(e) for e in c.emails if str(e).strip()], birthday=c.birthday)
            for c in clean.draft.contacts]


def rank(reasons_by_customer: dict[int, list[DuplicateReason]]) -> list[int]:
    """Customer ids, the likeliest duplicate first."""
    return sorted(reasons_by_customer, key=lambda cid: (-_weight(reasons_by_customer[cid]), cid))


def _choice(errors: dict[str, FieldError], name: str, value: str, allowed: list[str]) -> None:
    if value not in allowed:
        errors[name] = one_of(allowed)


def _normalised(errors: dict[str, FieldError], name: str, values: list[str], normalise) -> list[str]:
    out = []
    for value in values:
        if not value or not str(value).strip():
            continue
        try:
            out.append(normalise(str(value)))
        except InvalidValue as bad:
            errors[name] = bad.problem
    return list(dict.fromkeys(out))
