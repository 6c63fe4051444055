"""The customer registry: registering and editing customers (D1, D2) with the duplicate
check, their contact persons, finding them, and their interactions (D3, C3)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from engine import people
from engine.errors import FieldError
from processes import customers as customer_store
from processes.crm.base import CrmBase, get_record
from processes.customers import ContactDraft, CustomerDraft, DuplicateCandidate
from processes.errors import (
    MUST_CARRY_TIME_ZONE,
    REQUIRED,
    DuplicateCustomer,
    InvalidData,
    one_of,
    record_not_found,
)
from processes.models import (
    Claim,
    ContactPerson,
    Customer,
    CustomerKey,
    Deal,
    Interaction,
    InteractionKind,
    InteractionStatus,
)
from processes.texts import _


@dataclass(frozen=True)
class Registration:
    customer: Customer
    duplicates: list[DuplicateCandidate]  # what the check found; registered deliberately if not empty


class CustomerRegistry(CrmBase):
    """Customers (D1, D2) and their interactions (D3, C3)."""

    def find_duplicates(self, draft: CustomerDraft) -> list[DuplicateCandidate]:
        clean = customer_store.check_draft(draft)
        with self.engine.reading() as session:
            return customer_store.find_duplicates(session, clean)

    def register_customer(self, draft: CustomerDraft, by: str, allow_duplicates: bool = False) -> Registration:
        """Check for likely duplicates and register. With duplicates found, raises
        DuplicateCustomer listing them unless ``allow_duplicates`` (a deliberate choice)."""
        clean = customer_store.check_draft(draft)
        with self.engine.transaction() as session:
            people.get_user(session, by)
            duplicates = customer_store.find_duplicates(session, clean)
            if duplicates and not allow_duplicates:
                raise DuplicateCustomer(duplicates)
            customer = customer_store.create_customer(session, clean, self.now, by)
            session.refresh(customer, ["curator", "contacts"])  # readable after the session is gone
        return Registration(customer, duplicates)

    def update_customer(self, customer_id: int, draft: CustomerDraft, by: str,
                        allow_duplicates: bool = False) -> Registration:
        """Replace the customer's own fields with the draft's (its contact persons stay; add
        them with ``add_contact``). The duplicate check runs against the other customers."""
        if draft.contacts:
            raise InvalidData("customer", {"contacts": FieldError("contacts_apart", _("add contact persons with "
                                                                                    "add_contact"))})
        clean = customer_store.check_draft(draft)
        with self.engine.transaction() as session:
            people.get_user(session, by)
            customer = session.scalar(select(Customer).where(Customer.id == customer_id)
                                      .with_for_update(of=Customer))
            if customer is None:
                raise record_not_found("customer", customer_id)
            duplicates = [d for d in customer_store.find_duplicates(session, clean) if d.customer_id != customer.id]
            if duplicates and not allow_duplicates:
                raise DuplicateCustomer(duplicates)
            if draft.curator != (customer.curator.username if customer.curator else None):
                raise InvalidData("customer", {"curator": FieldError("curator_apart", _(
                    "hand the customer over with change_curator, so that its open work moves too"))})
            for name, value in customer_store.customer_row(clean, customer.created_at, customer.created_by,
                                                           customer.curator_id).items():
                setattr(customer, name, value)
            customer_store.replace_keys(session, customer, clean)
            session.flush()
            session.refresh(customer, ["curator", "contacts"])
        return Registration(customer, duplicates)

    def add_contact(self, customer_id: int, contact: ContactDraft, by: str) -> ContactPerson:
        with self.engine.transaction() as session:
            people.get_user(session, by)
            customer = get_record(session, Customer, customer_id, "customer")
            clean = customer_store.check_draft(CustomerDraft(name=customer.name, inn=customer.inn,
                                                             kind=customer.kind, partner_role=customer.partner_role,
                                                             status=customer.status, contacts=[contact]))
            [row] = customer_store.contact_rows(clean)
            person = ContactPerson(customer_id=customer.id, **row)
            session.add(person)
            session.flush()
            keys = [("phone", p) for p in person.phones] + [("email", e) for e in person.emails]
            existing = set(session.execute(select(CustomerKey.kind, CustomerKey.value)
                                           .where(CustomerKey.customer_id == customer.id)).all())
            session.add_all(CustomerKey(customer_id=customer.id, kind=kind, value=value)
                            for kind, value in dict.fromkeys(keys) if (kind, value) not in existing)
        return person

    def customer(self, customer_id: int) -> Customer:
        with self.engine.reading() as session:
            customer = session.get(Customer, customer_id, options=[selectinload(Customer.contacts)])
            if customer is None:
                raise record_not_found("customer", customer_id)
            return customer

    def search_customers(self, text: str, limit: int = 50) -> list[Customer]:
        """By INN, phone or e-mail (exact, indexed), or by a part of the name."""
        text = text.strip()
        with self.engine.reading() as session:
            digits = re.sub(r"\D", "", text)
            keys = []
            if "@" in text:
                keys.append(("email", text.lower()))
            elif digits and len(digits) >= 6 and not re.search(r"[^\d\s()+-]", text):
                keys += [("inn", digits)]
                try:
                    keys.append(("phone", customer_store.normal_phone(text)))
                except ValueError:
                    pass
            if keys:
                ids = select(CustomerKey.customer_id).where(customer_store.key_condition(keys))
                query = select(Customer).where(Customer.id.in_(ids))
            else:
                pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                query = select(Customer).where(Customer.name.ilike(pattern, escape="\\"))
            return list(session.scalars(query.order_by(Customer.name, Customer.id).limit(limit)))

    # -- interactions (D3, C3) ----------------------------------------------------------

    def log_interaction(self, customer_id: int, kind: str, subject: str, by: str, *,
                        status: str = InteractionStatus.DONE, at: datetime | None = None,
                        notes: str | None = None, deal_id: int | None = None, claim_id: int | None = None,
                        contact_person_id: int | None = None) -> Interaction:
        errors: dict[str, FieldError] = {}
        if kind not in {k.value for k in InteractionKind}:
            errors["kind"] = one_of(k.value for k in InteractionKind)
        if status not in {s.value for s in InteractionStatus}:
            errors["status"] = one_of(s.value for s in InteractionStatus)
        if not subject or not subject.strip():
            errors["subject"] = REQUIRED
        if at is not None and at.tzinfo is None:
            errors["at"] = MUST_CARRY_TIME_ZONE
        with self.engine.transaction() as session:
            people.get_user(session, by)
            customer = get_record(session, Customer, customer_id, "customer")
            if deal_id is not None and get_record(session, Deal, deal_id, "deal").customer_id != customer.id:
                errors["deal_id"] = FieldError("other_customer", _("deal %(deal_id)s is not a deal of customer "
                                                                   "%(customer_id)s", deal_id=deal_id,
                                                                   customer_id=customer_id))
            if claim_id is not None and get_record(session, Claim, claim_id, "claim").customer_id != customer.id:
                errors["claim_id"] = FieldError("other_customer", _("claim %(claim_id)s is not a claim of customer "
                                                                    "%(customer_id)s", claim_id=claim_id,
                                                                    customer_id=customer_id))
            if contact_person_id is not None and contact_person_id not in {c.id for c in customer.contacts}:
                errors["contact_person_id"] = FieldError("other_customer", _(
                    "is not a contact person of customer %(customer_id)s", customer_id=customer_id))
            if errors:
                raise InvalidData("interaction", errors)
            interaction = Interaction(
                customer_id=customer.id, kind=kind, status=status, subject=subject.strip(), notes=notes,
                at=at or self.now, employee=by, contact_person_id=contact_person_id, deal_id=deal_id,
                claim_id=claim_id, created_at=self.now,
            )
            session.add(interaction)
        return interaction

    def timeline(self, customer_id: int, deal_id: int | None = None, claim_id: int | None = None) -> list[Interaction]:
        """The customer's interactions, newest first; optionally only one deal's or claim's."""
        with self.engine.reading() as session:
            query = select(Interaction).where(Interaction.customer_id == customer_id)
            if deal_id is not None:
                query = query.where(Interaction.deal_id == deal_id)
            if claim_id is not None:
                query = query.where(Interaction.claim_id == claim_id)
            return list(session.scalars(query.order_by(Interaction.at.desc(), Interaction.id.desc())))
