"""The CRM domain facade: customers, interactions, deals of three kinds, claims, the
customer card and curator changes. The CLI and the web UI call this; it calls the engine.

Deal and claim records follow their process instances through an engine step listener
(``_on_step``): stage changes, moves, outcomes and investigation results are written in
the same transaction as the engine step that caused them, so they can never disagree.
"""

from __future__ import annotations

import math
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload, undefer

from engine import people
from engine.errors import NotAuthorized, NotFound
from engine.models import EventType, Group, HistoryEvent, ItemStatus, ProcessInstance, Role, User, WorkItem
from engine.runtime import Engine
from processes import customers as customer_store
from processes.customers import ContactDraft, CustomerDraft, DuplicateCandidate
from processes.errors import DuplicateCustomer, InvalidData
from processes.models import (
    Claim,
    ClaimActivity,
    ClaimAttachment,
    ClaimStatus,
    ContactPerson,
    Customer,
    CuratorChange,
    CustomerKey,
    Deal,
    DealKind,
    DealMove,
    DealStagePlan,
    DealStatus,
    DealTask,
    Interaction,
    InteractionKind,
    InteractionStatus,
)
from processes.stages import (
    BY_CODE,
    BY_LABEL,
    LOST,
    LOST_REASONS,
    STAGE_CODES,
    STAGES,
    WON,
    move_direction,
    stage_index,
)

DEAL_PROCESSES = {DealKind.TYPICAL.value: "typical_sale", DealKind.MANUAL.value: "manual_deal"}
CLAIM_PROCESS = "claim_investigation"
PROJECT_TASK_PROCESS = "project_task"
# The lane of the deal processes whose steps belong to the deal's curator.
CURATOR_LANE = "sales"
CLAIM_REASONS = ("quality", "delivery_delay", "wrong_goods", "damaged", "billing", "service", "staff", "other")
CLAIM_RESPONSE_WORKING_DAYS = 10
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
CLAIM_STAGES = {
    "Triage": ClaimStatus.TRIAGE.value,
    "Investigation plan": ClaimStatus.INVESTIGATION.value,
    "Investigation": ClaimStatus.INVESTIGATION.value,
    "Resolution": ClaimStatus.RESOLUTION.value,
    "Customer informed": ClaimStatus.INFORMING.value,
}
INFORMED_BY = {"call": InteractionKind.CALL_OUT.value, "email": InteractionKind.EMAIL.value,
               "letter": InteractionKind.LETTER.value, "meeting": InteractionKind.MEETING.value}


@dataclass(frozen=True)
class Registration:
    customer: Customer
    duplicates: list[DuplicateCandidate]  # what the check found; registered deliberately if not empty


@dataclass
class ClaimDraft:
    customer_id: int
    complainant: str
    essence: str
    reason: str
    guilty_department: str | None = None
    guilty_employee: str | None = None
    deal_id: int | None = None
    # (file name, content type, content)
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class PlannedActivity:
    owner: str
    due_on: date
    description: str


@dataclass(frozen=True)
class CardProcess:
    """One business process on the customer card (D4)."""

    kind: str  # typical, manual, project, claim
    id: int
    number: str
    title: str
    status: str
    stage: str | None  # label of the current stage
    responsible: str | None
    planned_end: date | None  # when the current stage should be done
    deviation_days: int | None  # days behind the plan (negative: ahead)
    next_step: str | None
    next_due: datetime | None
    days_left: int | None  # until the next step's deadline (negative: overdue)

    @property
    def describe(self) -> str:
        parts = [f"{self.number} {self.title}", self.status.replace("_", " ")]
        if self.stage:
            parts.append(f"stage {self.stage}")
        if self.deviation_days and self.deviation_days > 0:
            parts.append(f"{self.deviation_days} {'day' if self.deviation_days == 1 else 'days'} behind plan")
        if self.next_step and self.days_left is not None:
            parts.append(f"{self.next_step}: {_days(self.days_left)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class StagePlanRow:
    """S4/D4: one stage of a deal, planned against actual."""

    stage: str
    label: str
    planned_end: date | None
    entered_at: datetime | None  # the last time the deal entered it
    left_at: datetime | None
    deviation_days: int | None  # actual (or, while in it, today's) date minus the planned end


@dataclass(frozen=True)
class CustomerCard:
    customer: Customer
    processes: list[CardProcess]
    timeline: list[Interaction]
    curator_changes: list[CuratorChange]

    @property
    def summary(self) -> str:
        running = [p for p in self.processes if p.kind != "claim" and p.status == DealStatus.IN_PROGRESS.value]
        behind = [p for p in running if p.deviation_days and p.deviation_days > 0]
        won = sum(1 for p in self.processes if p.status == DealStatus.WON.value)
        lost = sum(1 for p in self.processes if p.status == DealStatus.LOST.value)
        open_claims = sum(1 for p in self.processes if p.kind == "claim" and p.status != ClaimStatus.CLOSED.value)
        text = f"{len(running)} running deals, {won} won, {lost} lost, {open_claims} open claims"
        if behind:
            text += (f"; {len(behind)} of {len(running)} running deals are behind plan, "
                     f"by up to {max(p.deviation_days for p in behind)} days")
        return text


def _days(days_left: int) -> str:
    count = abs(days_left)
    unit = "day" if count == 1 else "days"
    return f"{count} {unit} overdue" if days_left < 0 else f"{count} {unit} left"


_FACADE_ATTRIBUTE = "crmflow_crm_facade"


class Crm:
    """The facade; one per Engine. ``Crm(engine)`` hands back the engine's facade when it
    has one (the ``crmflow.engine_plugins`` entry point creates it with every Engine), so
    the step listener is never registered twice."""

    _lock = threading.Lock()

    def __new__(cls, engine: Engine):
        with cls._lock:
            # Kept on the engine itself: the facade lives exactly as long as its engine.
            existing = engine.__dict__.get(_FACADE_ATTRIBUTE)
            if existing is None:
                existing = super().__new__(cls)
                existing._attach(engine)
                engine.__dict__[_FACADE_ATTRIBUTE] = existing
            return existing

    def _attach(self, engine: Engine) -> None:
        self.engine = engine
        # Records to create in the transaction that starts their process: token -> creator.
        self._pending: dict[str, Callable[[Session, ProcessInstance], None]] = {}
        self._pending_lock = threading.Lock()
        engine.add_listener(self._on_step, process_keys=[*DEAL_PROCESSES.values(), CLAIM_PROCESS,
                                                         PROJECT_TASK_PROCESS])

    @property
    def now(self) -> datetime:
        return self.engine.clock()

    # -- customers (D1, D2) -------------------------------------------------------------

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
            raise InvalidData("customer", {"contacts": "add contact persons with add_contact"})
        clean = customer_store.check_draft(draft)
        with self.engine.transaction() as session:
            people.get_user(session, by)
            customer = session.scalar(select(Customer).where(Customer.id == customer_id)
                                      .with_for_update(of=Customer))
            if customer is None:
                raise NotFound(f"There is no customer {customer_id}.")
            duplicates = [d for d in customer_store.find_duplicates(session, clean) if d.customer_id != customer.id]
            if duplicates and not allow_duplicates:
                raise DuplicateCustomer(duplicates)
            if draft.curator != (customer.curator.username if customer.curator else None):
                raise InvalidData("customer", {"curator": "hand the customer over with change_curator, "
                                                          "so that its open work moves too"})
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
            customer = _get(session, Customer, customer_id, "customer")
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
                raise NotFound(f"There is no customer {customer_id}.")
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
                        status: str = InteractionStatus.DONE.value, at: datetime | None = None,
                        notes: str | None = None, deal_id: int | None = None, claim_id: int | None = None,
                        contact_person_id: int | None = None) -> Interaction:
        errors = {}
        if kind not in {k.value for k in InteractionKind}:
            errors["kind"] = f"must be one of {', '.join(k.value for k in InteractionKind)}"
        if status not in {s.value for s in InteractionStatus}:
            errors["status"] = f"must be one of {', '.join(s.value for s in InteractionStatus)}"
        if not subject or not subject.strip():
            errors["subject"] = "is required"
        if at is not None and at.tzinfo is None:
            errors["at"] = "must carry a time zone"
        with self.engine.transaction() as session:
            people.get_user(session, by)
            customer = _get(session, Customer, customer_id, "customer")
            if deal_id is not None and _get(session, Deal, deal_id, "deal").customer_id != customer.id:
                errors["deal_id"] = f"deal {deal_id} is not a deal of customer {customer_id}"
            if claim_id is not None and _get(session, Claim, claim_id, "claim").customer_id != customer.id:
                errors["claim_id"] = f"claim {claim_id} is not a claim of customer {customer_id}"
            if contact_person_id is not None and contact_person_id not in {c.id for c in customer.contacts}:
                errors["contact_person_id"] = f"is not a contact person of customer {customer_id}"
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

    # -- deals (S1-S4) --------------------------------------------------------------------

    def start_deal(self, kind: str, customer_id: int, curator: str, title: str, by: str, *,
                   amount: Decimal | int | str | None = None, first_stage: str = STAGES[0].code) -> Deal:
        """Open a deal. A typical or manual deal starts its process, and the deal record is
        written in the same transaction; a project (non-process) deal is a record whose
        tasks are added with ``add_project_task``."""
        errors = {}
        if kind not in {k.value for k in DealKind}:
            errors["kind"] = f"must be one of {', '.join(k.value for k in DealKind)}"
        if not title or not title.strip():
            errors["title"] = "is required"
        parsed_amount = None
        if amount not in (None, ""):
            try:
                parsed_amount = Decimal(str(amount).replace(" ", "").replace(",", "."))
                if parsed_amount < 0 or not parsed_amount.is_finite():
                    raise InvalidOperation
            except InvalidOperation:
                errors["amount"] = f"{amount!r} is not an amount of money"
        if first_stage not in STAGE_CODES:
            errors["first_stage"] = f"must be one of {', '.join(STAGE_CODES)}"
        elif kind == DealKind.TYPICAL.value and first_stage != STAGES[0].code:
            errors["first_stage"] = "a typical sale always starts at the first contact"
        if errors:
            raise InvalidData("deal", errors)
        with self.engine.reading() as session:
            customer = _get(session, Customer, customer_id, "customer")
            curator_user = people.get_user(session, curator)
            starter = people.get_user(session, by)
            if not curator_user.active:
                raise InvalidData("deal", {"curator": f"{curator} is no longer active"})
            if starter.id != curator_user.id and not _manages(session, starter, curator_user):
                raise NotAuthorized(f"{by} may not open a deal for {curator}: only for themselves, "
                                    "or for the people they manage.")
        fields = dict(kind=kind, title=title.strip(), customer_id=customer.id, curator_id=curator_user.id,
                      amount=parsed_amount, created_by=by)

        if kind == DealKind.PROJECT.value:
            with self.engine.transaction() as session:
                deal = self._new_deal(session, fields, instance_id=None, first_stage=None)
            return self.deal(deal.id)

        created: list[Deal] = []

        def create(session: Session, instance: ProcessInstance) -> None:
            created.append(self._new_deal(session, fields, instance_id=instance.id, first_stage=first_stage))
            instance.business_key = created[-1].number

        data = {"curator": curator, "customer_name": customer.name, "deal_title": title.strip(),
                "amount": float(parsed_amount) if parsed_amount is not None else None}
        if kind == DealKind.MANUAL.value:
            data.update(stage=first_stage, move_reason=None)
        self._start_with_record(DEAL_PROCESSES[kind], data, by, create)
        return self.deal(created[-1].id)

    def _new_deal(self, session: Session, fields: dict, instance_id: int | None, first_stage: str | None) -> Deal:
        now = self.now
        deal = Deal(**fields, instance_id=instance_id, status=DealStatus.IN_PROGRESS.value, created_at=now)
        if fields["kind"] != DealKind.PROJECT.value:
            # The plan: each stage from the first one on ends after its planned duration.
            end = now.date()
            for stage in STAGES[STAGE_CODES.index(first_stage):]:
                end += timedelta(days=stage.planned_days)
                deal.plan.append(DealStagePlan(stage=stage.code, planned_end=end))
        session.add(deal)
        session.flush()
        deal.number = f"D-{deal.id:06d}"
        return deal

    def _start_with_record(self, process_key: str, data: dict, by: str | None,
                           create: Callable[[Session, ProcessInstance], None]) -> ProcessInstance:
        token = f"crmflow-pending-{secrets.token_hex(12)}"
        with self._pending_lock:
            self._pending[token] = create
        try:
            return self.engine.start(process_key, data, started_by=by, business_key=token)
        finally:
            with self._pending_lock:
                self._pending.pop(token, None)

    def deal(self, deal_id: int) -> Deal:
        with self.engine.reading() as session:
            deal = session.get(Deal, deal_id, options=[selectinload(Deal.plan)])
            if deal is None:
                raise NotFound(f"There is no deal {deal_id}.")
            deal.customer
            return deal

    def deal_moves(self, deal_id: int, latest: int | None = None) -> list[DealMove]:
        """The deal's stage moves, oldest first; only the ``latest`` ones when given."""
        with self.engine.reading() as session:
            query = select(DealMove).where(DealMove.deal_id == deal_id).order_by(DealMove.id.desc()).limit(latest)
            return list(reversed(session.scalars(query).all()))

    def deal_move_count(self, deal_id: int) -> int:
        with self.engine.reading() as session:
            return session.scalar(select(func.count()).select_from(DealMove).where(DealMove.deal_id == deal_id))

    def stage_plan(self, deal_id: int) -> list[StagePlanRow]:
        """Each stage of the deal: planned end, when it was actually entered and left, and
        the deviation in days (positive: behind the plan)."""
        deal = self.deal(deal_id)
        planned = {p.stage: p.planned_end for p in deal.plan}
        entered: dict[str, datetime] = {}
        left: dict[str, datetime] = {}
        for move in self.deal_moves(deal_id):
            if move.from_stage:
                left[move.from_stage] = move.moved_at
            if move.to_stage in BY_CODE:
                entered[move.to_stage] = move.moved_at
                left.pop(move.to_stage, None)
        today = self.now.date()
        rows = []
        for stage in STAGES:
            end = planned.get(stage.code)
            actual = left.get(stage.code)
            if actual is None and stage.code == deal.current_stage and deal.status == DealStatus.IN_PROGRESS.value:
                reference = today
            else:
                reference = actual.date() if actual else None
            deviation = (reference - end).days if end and reference else None
            rows.append(StagePlanRow(stage.code, stage.label, end, entered.get(stage.code), actual, deviation))
        return rows

    def set_stage_plan(self, deal_id: int, planned_ends: dict[str, date], by: str) -> Deal:
        """Change the planned end of stages of a deal (S4)."""
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            deal = _get(session, Deal, deal_id, "deal")
            if actor.id != deal.curator_id and not _manages(session, actor, deal.curator):
                raise NotAuthorized(f"{by} may not change the plan of {deal.number}: it is {deal.curator.username}'s deal.")
            unknown = [stage for stage in planned_ends if stage not in STAGE_CODES]
            if unknown:
                raise InvalidData("stage plan", {stage: "is not a sales stage" for stage in unknown})
            if deal.kind == DealKind.PROJECT.value:
                raise InvalidData("stage plan", {"deal": "a project deal has no stages"})
            existing = {p.stage: p for p in deal.plan}
            for stage, planned_end in planned_ends.items():
                if stage in existing:
                    existing[stage].planned_end = planned_end
                else:
                    deal.plan.append(DealStagePlan(stage=stage, planned_end=planned_end))
        return self.deal(deal_id)

    def add_project_task(self, deal_id: int, title: str, owner: str, due_at: datetime | None, by: str,
                         description: str | None = None) -> DealTask:
        """A task of a non-process deal: a work item in the owner's inbox with its deadline."""
        errors = {}
        if not title or not title.strip():
            errors["title"] = "is required"
        if due_at is None:
            errors["due_at"] = "is required"
        elif due_at.tzinfo is None:
            errors["due_at"] = "must carry a time zone"
        with self.engine.reading() as session:
            deal = _get(session, Deal, deal_id, "deal")
            actor = people.get_user(session, by)
            if actor.id != deal.curator_id and not _manages(session, actor, deal.curator):
                raise NotAuthorized(f"{by} may not add tasks to {deal.number}: it is {deal.curator.username}'s deal.")
            if deal.kind != DealKind.PROJECT.value:
                errors["deal"] = f"{deal.number} is a {deal.kind} deal: its steps come from its process"
            elif deal.status != DealStatus.IN_PROGRESS.value:
                errors["deal"] = f"{deal.number} is closed ({deal.status})"
            if people.find_user(session, owner) is None:
                errors["owner"] = f"there is no user {owner!r}" if owner else "is required"
        if errors:
            raise InvalidData("project task", errors)
        created: list[DealTask] = []

        def create(session: Session, instance: ProcessInstance) -> None:
            task = DealTask(deal_id=deal_id, instance_id=instance.id, title=title.strip(), description=description,
                            owner=owner, due_at=due_at, created_by=by)
            session.add(task)
            created.append(task)
            instance.business_key = deal.number

        self._start_with_record(PROJECT_TASK_PROCESS, {"owner": owner, "due": due_at.isoformat(),
                                                       "task_title": title.strip(), "deal_number": deal.number},
                                by, create)
        return created[-1]

    def close_project_deal(self, deal_id: int, outcome: str, by: str, lost_reason: str | None = None) -> Deal:
        """A project deal has no process to end it: its curator (or a manager) closes it."""
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            deal = _get(session, Deal, deal_id, "deal")
            if actor.id != deal.curator_id and not _manages(session, actor, deal.curator):
                raise NotAuthorized(f"{by} may not close {deal.number}: it is {deal.curator.username}'s deal.")
            if outcome not in (WON, LOST):
                raise InvalidData("deal", {"outcome": "must be won or lost"})
            if outcome == LOST and lost_reason not in LOST_REASONS:
                raise InvalidData("deal", {"lost_reason": f"must be one of {', '.join(LOST_REASONS)}"})
            if deal.kind != DealKind.PROJECT.value:
                raise InvalidData("deal", {"kind": "only a project deal is closed by hand; the others by their process"})
            if deal.status != DealStatus.IN_PROGRESS.value:
                raise InvalidData("deal", {"status": f"{deal.number} is already {deal.status}"})
            open_tasks = session.scalar(select(func.count()).select_from(DealTask)
                                        .where(DealTask.deal_id == deal.id, DealTask.done_at.is_(None)))
            if open_tasks:
                raise InvalidData("deal", {"tasks": f"{open_tasks} task(s) are still open"})
            deal.status = outcome
            deal.lost_reason = lost_reason
            deal.closed_at = self.now
        return self.deal(deal_id)

    def deal_tasks(self, deal_id: int) -> list[DealTask]:
        with self.engine.reading() as session:
            return list(session.scalars(select(DealTask).where(DealTask.deal_id == deal_id).order_by(DealTask.id)))

    # -- claims (C1-C4) -------------------------------------------------------------------

    def register_claim(self, draft: ClaimDraft, by: str | None) -> Claim:
        """Register a claim from any partner and start its investigation. ``by`` is None for
        a claim the customer registers themselves (self-service)."""
        errors = {}
        if not (draft.complainant or "").strip():
            errors["complainant"] = "is required"
        if not (draft.essence or "").strip():
            errors["essence"] = "is required"
        if draft.reason not in CLAIM_REASONS:
            errors["reason"] = f"must be one of {', '.join(CLAIM_REASONS)}"
        for index, (name, _content_type, content) in enumerate(draft.attachments):
            if not name or "/" in name or "\\" in name:
                errors[f"attachments[{index + 1}]"] = f"{name!r} is not a plain file name"
            elif len(content) > MAX_ATTACHMENT_BYTES:
                errors[f"attachments[{index + 1}]"] = f"{name} is larger than {MAX_ATTACHMENT_BYTES // 2**20} MB"
        with self.engine.reading() as session:
            customer = _get(session, Customer, draft.customer_id, "customer")
            if by is not None:
                people.get_user(session, by)
            if draft.guilty_employee and people.find_user(session, draft.guilty_employee) is None:
                errors["guilty_employee"] = f"there is no crmflow user {draft.guilty_employee!r}"
            if draft.guilty_department:
                if session.scalar(select(Group).where(Group.name == draft.guilty_department)) is None:
                    errors["guilty_department"] = f"there is no department {draft.guilty_department!r}"
            if draft.deal_id is not None:
                deal = session.get(Deal, draft.deal_id)
                if deal is None or deal.customer_id != customer.id:
                    errors["deal_id"] = f"deal {draft.deal_id} is not a deal of this customer"
        if errors:
            raise InvalidData("claim", errors)
        now = self.now
        due = self.engine.working_calendar.add_working_days(now, CLAIM_RESPONSE_WORKING_DAYS)
        created: list[Claim] = []

        def create(session: Session, instance: ProcessInstance) -> None:
            guilty = people.find_user(session, draft.guilty_employee) if draft.guilty_employee else None
            claim = Claim(
                customer_id=customer.id, complainant=draft.complainant.strip(), essence=draft.essence.strip(),
                reason=draft.reason, guilty_department=draft.guilty_department, guilty_employee=guilty,
                deal_id=draft.deal_id, status=ClaimStatus.TRIAGE.value, registered_at=now, registered_by=by,
                response_due_at=due, instance_id=instance.id,
                attachments=[ClaimAttachment(filename=name, content_type=content_type or "application/octet-stream",
                                             size=len(content), content=content)
                             for name, content_type, content in draft.attachments],
            )
            session.add(claim)
            session.flush()
            claim.number = f"CL-{claim.id:06d}"
            instance.business_key = claim.number
            created.append(claim)

        data = {"claim_customer": customer.name, "claim_reason": draft.reason, "claim_due": due.isoformat(),
                "partner_role": customer.partner_role}
        self._start_with_record(CLAIM_PROCESS, data, by, create)
        return self.claim(created[-1].id)

    def claim(self, claim_id: int) -> Claim:
        with self.engine.reading() as session:
            claim = session.get(Claim, claim_id, options=[selectinload(Claim.activities),
                                                         selectinload(Claim.attachments)])
            if claim is None:
                raise NotFound(f"There is no claim {claim_id}.")
            claim.customer
            return claim

    def claim_attachment(self, claim_id: int, attachment_id: int) -> ClaimAttachment:
        """One file of a claim, with its content."""
        with self.engine.reading() as session:
            attachment = session.scalar(select(ClaimAttachment).where(ClaimAttachment.id == attachment_id,
                                                                      ClaimAttachment.claim_id == claim_id)
                                        .options(undefer(ClaimAttachment.content)))
            if attachment is None:
                raise NotFound(f"Claim {claim_id} has no attachment {attachment_id}.")
            return attachment

    def plan_investigation(self, item_id: int, activities: Iterable[PlannedActivity], user: str,
                           expected_version: int | None = None) -> WorkItem:
        """Complete the "Plan the investigation" step with a list of activities."""
        lines = [f"{a.owner}; {a.due_on.isoformat()}; {a.description.strip()}" for a in activities]
        with self.engine.reading() as session:
            problems = _plan_problems(session, "\n".join(lines), self.now.date())
        if problems:
            raise InvalidData("investigation plan", problems)
        return self.engine.complete(item_id, {"plan": "\n".join(lines)}, user, expected_version=expected_version)

    # -- the customer card (D4) -------------------------------------------------------------

    def customer_card(self, customer_id: int) -> CustomerCard:
        now = self.now
        today = now.date()
        with self.engine.reading() as session:
            customer = session.get(Customer, customer_id, options=[selectinload(Customer.contacts)])
            if customer is None:
                raise NotFound(f"There is no customer {customer_id}.")
            deals = list(session.scalars(select(Deal).where(Deal.customer_id == customer_id)
                                         .options(selectinload(Deal.plan)).order_by(Deal.id)))
            claims = list(session.scalars(select(Claim).where(Claim.customer_id == customer_id).order_by(Claim.id)))
            instance_ids = [d.instance_id for d in deals if d.instance_id] + [c.instance_id for c in claims]
            task_instances: dict[int, list[int]] = {}
            for task in session.scalars(select(DealTask).where(DealTask.deal_id.in_([d.id for d in deals]))):
                task_instances.setdefault(task.deal_id, []).append(task.instance_id)
                instance_ids.append(task.instance_id)
            open_items: dict[int, list[WorkItem]] = {}
            for item in session.scalars(select(WorkItem).where(WorkItem.instance_id.in_(instance_ids),
                                                                WorkItem.status == ItemStatus.OPEN.value)
                                        .order_by(WorkItem.due_at.is_(None), WorkItem.due_at, WorkItem.id)):
                open_items.setdefault(item.instance_id, []).append(item)
            processes = []
            for deal in deals:
                items = [i for iid in ([deal.instance_id] if deal.instance_id else task_instances.get(deal.id, []))
                         for i in open_items.get(iid, [])]
                items.sort(key=lambda i: (i.due_at is None, i.due_at or now))
                planned = {p.stage: p.planned_end for p in deal.plan}.get(deal.current_stage)
                deviation = (today - planned).days if planned and deal.status == DealStatus.IN_PROGRESS.value else None
                processes.append(_card_process(deal.kind, deal.id, deal.number, deal.title, deal.status,
                                               BY_CODE[deal.current_stage].label if deal.current_stage else None,
                                               deal.curator.username, planned, deviation, items, now))
            for claim in claims:
                items = open_items.get(claim.instance_id, [])
                deviation = None
                if claim.status != ClaimStatus.CLOSED.value:
                    deviation = (today - claim.response_due_at.date()).days
                processes.append(_card_process("claim", claim.id, claim.number, claim.essence[:80], claim.status,
                                               claim.status.replace("_", " "), claim.responsible_officer,
                                               claim.response_due_at.date(), deviation, items, now))
            timeline = list(session.scalars(select(Interaction).where(Interaction.customer_id == customer_id)
                                            .order_by(Interaction.at.desc(), Interaction.id.desc())))
            changes = list(session.scalars(select(CuratorChange).where(CuratorChange.customer_id == customer_id)
                                           .order_by(CuratorChange.id)))
            return CustomerCard(customer, processes, timeline, changes)

    # -- curator change (E3) ----------------------------------------------------------------

    def change_curator(self, customer_ids: Iterable[int], to_user: str, by: str, reason: str | None = None) -> list[CuratorChange]:
        """Hand customers to another curator, in one transaction: the customers, their running
        deals, and the open work items of those deals held by the old curator move together,
        and every moved item is recorded in its instance's history."""
        ids = list(dict.fromkeys(customer_ids))
        with self.engine.transaction() as session:
            actor = people.get_user(session, by)
            target = people.get_user(session, to_user)
            if not target.active:
                raise NotAuthorized(f"{target.username} is no longer active and cannot take customers.")
            customers = list(session.scalars(select(Customer).where(Customer.id.in_(ids))
                                             .order_by(Customer.id).with_for_update(of=Customer)))
            missing = set(ids) - {c.id for c in customers}
            if missing:
                raise NotFound(f"There are no customers {sorted(missing)}.")
            return [self._hand_over(session, customer, actor, target, reason) for customer in customers]

    def hand_over_all(self, from_user: str, to_user: str, by: str, reason: str | None = None) -> list[CuratorChange]:
        """All customers of a leaving employee to another, in one operation."""
        with self.engine.reading() as session:
            leaving = people.get_user(session, from_user)
            ids = list(session.scalars(select(Customer.id).where(Customer.curator_id == leaving.id)))
        return self.change_curator(ids, to_user, by, reason)

    def _hand_over(self, session: Session, customer: Customer, actor: User, target: User,
                   reason: str | None) -> CuratorChange:
        previous = customer.curator
        if not _may_change_curator(session, actor, previous):
            raise NotAuthorized(f"{actor.username} may not hand over customer {customer.id} ({customer.name}): "
                                "that takes its curator, their manager, a head of their department or an admin.")
        now = self.now
        customer.curator = target
        deals = list(session.scalars(select(Deal).where(Deal.customer_id == customer.id,
                                                          Deal.status == DealStatus.IN_PROGRESS.value)))
        instance_ids = [d.instance_id for d in deals if d.instance_id]
        instance_ids += list(session.scalars(select(DealTask.instance_id).where(
            DealTask.deal_id.in_([d.id for d in deals]), DealTask.done_at.is_(None))))
        for deal in deals:
            if previous is None or deal.curator_id == previous.id:
                deal.curator_id = target.id
        moved = []
        if previous is not None and instance_ids:
            items = session.scalars(select(WorkItem).where(
                WorkItem.instance_id.in_(instance_ids), WorkItem.status == ItemStatus.OPEN.value,
                WorkItem.assignee_id == previous.id).order_by(WorkItem.id).with_for_update(of=WorkItem))
            for item in items:
                item.assignee_id = target.id
                item.version += 1
                moved.append(item.id)
                session.add(HistoryEvent(
                    instance_id=item.instance_id, work_item_id=item.id, type=EventType.WORK_ITEM_REASSIGNED.value,
                    at=now, actor=actor.username, task_spec=item.task_spec,
                    detail={"from": previous.username, "to": target.username,
                            "reason": f"curator of {customer.name} changed" + (f": {reason}" if reason else "")},
                ))
        if previous is not None and instance_ids:
            session.execute(update(DealTask).where(DealTask.instance_id.in_(instance_ids),
                                                   DealTask.owner == previous.username)
                            .values(owner=target.username).execution_options(synchronize_session=False))
        change = CuratorChange(customer_id=customer.id, from_user=previous.username if previous else None,
                               to_user=target.username, changed_by=actor.username, changed_at=now, reason=reason,
                               moved_work_items=moved)
        session.add(change)
        return change

    # -- following the processes -------------------------------------------------------------

    def _on_step(self, session: Session, events: list[HistoryEvent]) -> None:
        by_instance: dict[int, list[HistoryEvent]] = {}
        for event in events:
            by_instance.setdefault(event.instance_id, []).append(event)
        for instance_id, instance_events in by_instance.items():
            instance = session.get(ProcessInstance, instance_id)
            started = next((e for e in instance_events if e.type == EventType.INSTANCE_STARTED.value), None)
            if started is not None:
                create = self._pending.get((started.detail or {}).get("business_key") or "")
                if create is not None:
                    create(session, instance)
                    session.flush()
            if instance.process_key in DEAL_PROCESSES.values():
                deal = session.scalar(select(Deal).where(Deal.instance_id == instance_id))
                if deal is not None:
                    _follow_deal(session, deal, instance_events)
            elif instance.process_key == CLAIM_PROCESS:
                claim = session.scalar(select(Claim).where(Claim.instance_id == instance_id))
                if claim is not None:
                    _follow_claim(session, claim, instance_events, self.now)
            elif instance.process_key == PROJECT_TASK_PROCESS:
                task = session.scalar(select(DealTask).where(DealTask.instance_id == instance_id))
                if task is not None:
                    for event in instance_events:
                        if event.type == EventType.WORK_ITEM_COMPLETED.value:
                            task.result = (event.detail or {}).get("data", {}).get("result")
                            task.done_at = event.at


def _submitted(events: list[HistoryEvent]) -> tuple[str | None, dict[str, Any]]:
    """Who completed a step in this transaction, and the values of the form."""
    actor, data = None, {}
    for event in events:
        if event.type == EventType.WORK_ITEM_COMPLETED.value:
            actor = event.actor
            data.update((event.detail or {}).get("data") or {})
    return actor, data


_TYPICAL_BACK_REASONS = {"revise_offer": "the customer asked to revise the offer"}


def _follow_deal(session: Session, deal: Deal, events: list[HistoryEvent]) -> None:
    actor, data = _submitted(events)
    reason = data.get("move_reason") or _TYPICAL_BACK_REASONS.get(data.get("outcome"))
    for event in events:
        if event.type == EventType.STAGE_ENTERED.value:
            stage = BY_LABEL.get((event.detail or {}).get("stage"))
            if stage is not None and stage.code != deal.current_stage:
                _move(session, deal, stage.code, actor, event.at, reason)
        elif event.type == EventType.WORK_ITEM_CREATED.value:
            _follow_curator(session, deal, event)
        elif event.type == EventType.TASK_COMPLETED.value and event.task_spec in ("end_won", "end_lost"):
            won = event.task_spec == "end_won"
            deal.status = DealStatus.WON.value if won else DealStatus.LOST.value
            deal.closed_at = event.at
            if not won:
                deal.lost_reason = data.get("lost_reason")
                deal.lost_comment = data.get("loss_comment")
            if won:  # from the last stage, or a skip straight to won that was explained
                direction = move_direction(deal.current_stage, WON)
                why = reason if direction == "skip" else None
            else:
                direction, why = LOST, LOST_REASONS.get(data.get("lost_reason") or "")
            _record_move(session, deal, WON if won else LOST, direction, actor, event.at, why)


def _move(session: Session, deal: Deal, to_stage: str, actor: str | None, at: datetime, reason: str | None) -> None:
    direction = move_direction(deal.current_stage, to_stage)
    _record_move(session, deal, to_stage, direction, actor, at, reason if direction in ("skip", "back") else None)
    deal.current_stage = to_stage
    deal.stage_entered_at = at


def _record_move(session: Session, deal: Deal, to_stage: str, direction: str, actor: str | None, at: datetime,
                 reason: str | None) -> None:
    """The move, with what the funnel derives from it (see ``DealMove``): it ends the stay
    that the deal's latest move began, and may be the deal's first entry into the stage
    and its furthest point yet. One step can move a deal twice (a stage, then won), and an
    engine step's session does not autoflush: the flush lets the selects see the move
    before. The (deal, id) index answers both."""
    session.flush()
    latest = session.scalar(select(DealMove).where(DealMove.deal_id == deal.id).order_by(DealMove.id.desc()).limit(1))
    if latest is not None:
        latest.stay_days = (at - latest.moved_at).total_seconds() / 86400
    entered_before = session.scalar(select(func.count()).select_from(DealMove)
                                    .where(DealMove.deal_id == deal.id, DealMove.to_stage == to_stage))
    session.add(DealMove(deal_id=deal.id, from_stage=deal.current_stage, to_stage=to_stage, direction=direction,
                         moved_by=actor, moved_at=at, reason=reason, stay_days=None, first_entry=not entered_before,
                         deal_kind=deal.kind, deal_created_at=deal.created_at))
    if to_stage != LOST and (deal.furthest_stage is None or stage_index(to_stage) > stage_index(deal.furthest_stage)):
        deal.furthest_stage = to_stage


def _follow_curator(session: Session, deal: Deal, event: HistoryEvent) -> None:
    """A new step of the deal's curator goes to the deal's curator of today, even when the
    process still holds the curator it was started with."""
    item = session.get(WorkItem, event.work_item_id)
    if item is None or item.lane != CURATOR_LANE or item.assignee_id is None or item.assignee_id == deal.curator_id:
        return
    previous = item.assignee.username
    item.assignee_id = deal.curator_id
    item.version += 1
    session.add(HistoryEvent(instance_id=item.instance_id, work_item_id=item.id,
                             type=EventType.WORK_ITEM_REASSIGNED.value, at=event.at, actor=None,
                             task_spec=item.task_spec,
                             detail={"from": previous, "to": deal.curator.username,
                                     "reason": "the deal's curator has changed"}))


def _follow_claim(session: Session, claim: Claim, events: list[HistoryEvent], now: datetime) -> None:
    actor, data = _submitted(events)
    completed = {e.task_spec for e in events if e.type == EventType.WORK_ITEM_COMPLETED.value}
    if "triage" in completed:
        officer = people.find_user(session, data.get("responsible_officer") or "")
        if officer is None or not officer.active:
            raise InvalidData("triage", {"responsible_officer":
                                         f"there is no active crmflow user {data.get('responsible_officer')!r}"})
        claim.responsible_officer = officer.username
    if "plan_investigation" in completed:
        problems = _plan_problems(session, data.get("plan") or "", now.date())
        if problems:
            raise InvalidData("investigation plan", problems)
        _record_plan(session, claim, data["plan"], events)
    for event in events:
        if event.type == EventType.WORK_ITEM_COMPLETED.value and event.task_spec == "do_activity":
            activity = session.scalar(select(ClaimActivity).where(ClaimActivity.work_item_id == event.work_item_id))
            if activity is not None:
                activity.result = (event.detail or {}).get("data", {}).get("activity_result")
                activity.done_at = event.at
        elif event.type == EventType.STAGE_ENTERED.value:
            status = CLAIM_STAGES.get((event.detail or {}).get("stage"))
            if status is not None:
                claim.status = status
        elif event.type == EventType.INSTANCE_COMPLETED.value:
            claim.status = ClaimStatus.CLOSED.value
            claim.closed_at = event.at
    if "resolve" in completed:
        claim.resolution = data.get("resolution")
        claim.outcome = data.get("outcome_text")
        claim.resolved_at = now
    if "inform_customer" in completed:
        session.add(Interaction(
            customer_id=claim.customer_id, kind=INFORMED_BY[data["informed_by"]], status=InteractionStatus.DONE.value,
            subject=f"Claim {claim.number}: customer informed of the resolution ({claim.resolution})",
            notes=data.get("customer_reaction"), at=now, employee=actor, claim_id=claim.id, deal_id=claim.deal_id,
            created_at=now,
        ))


def parse_plan(text: str) -> list[tuple[int, list[str]]]:
    """(line number, [owner, due date, what to do]) of the plan's lines, as the BPMN's
    "Read the plan" script splits them; blank lines are skipped."""
    return [(number, [part.strip() for part in line.split(";", 2)])
            for number, line in enumerate(text.splitlines(), start=1) if line.strip()]


def _plan_problems(session: Session, text: str, today: date) -> dict[str, str]:
    problems = {}
    lines = parse_plan(text)
    if not lines:
        problems["plan"] = "list at least one activity: owner; due date; what to do"
    for number, parts in lines:
        where = f"plan line {number}"
        if len(parts) != 3 or not all(parts):
            problems[where] = "write it as: owner; due date (YYYY-MM-DD); what to do"
            continue
        owner, due, _ = parts
        user = people.find_user(session, owner)
        if user is None or not user.active:
            problems[where] = f"there is no active crmflow user {owner!r}"
            continue
        try:
            due_on = date.fromisoformat(due)
        except ValueError:
            problems[where] = f"{due!r} is not a date such as 2026-12-31"
            continue
        if due_on < today:
            problems[where] = f"the due date {due} is in the past"
    return problems


def _record_plan(session: Session, claim: Claim, text: str, events: list[HistoryEvent]) -> None:
    created = [session.get(WorkItem, e.work_item_id) for e in events
               if e.type == EventType.WORK_ITEM_CREATED.value and e.task_spec == "do_activity"]
    for _, (owner, due, description) in parse_plan(text):
        due_on = date.fromisoformat(due)
        match = next((item for item in created if item.assignee and item.assignee.username == owner
                      and item.due_at and item.due_at.date() == due_on), None)
        if match is not None:
            created.remove(match)
        session.add(ClaimActivity(claim_id=claim.id, work_item_id=match.id if match else None, owner=owner,
                                  due_on=due_on, description=description))


def _card_process(kind, id_, number, title, status, stage, responsible, planned_end, deviation, items, now):
    first = items[0] if items else None
    days_left = None
    if first is not None and first.due_at is not None:
        days_left = math.floor((first.due_at - now).total_seconds() / 86400)
    return CardProcess(kind, id_, number, title, status, stage, responsible, planned_end, deviation,
                       first.name if first else None, first.due_at if first else None, days_left)


def _get(session: Session, model, id_: int, what: str):
    row = session.get(model, id_)
    if row is None:
        raise NotFound(f"There is no {what} {id_}.")
    return row


def _manages(session: Session, actor: User, subject: User) -> bool:
    return Role.ADMIN.value in actor.role_set or people.responsible_for(session, actor, subject)


def _may_change_curator(session: Session, actor: User, curator: User | None) -> bool:
    if Role.ADMIN.value in actor.role_set:
        return True
    if curator is None:
        return Role.MANAGER.value in actor.role_set
    return actor.id == curator.id or people.responsible_for(session, actor, curator)
