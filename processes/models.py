"""The CRM domain's tables: customers and their contacts, interactions, deals, claims.

They live on the engine's declarative base so that foreign keys reach ``users`` and
``process_instances``; their schema is migrated by ``processes/migrations``.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, string_enum
from engine.models import User


class CustomerKind(enum.StrEnum):
    ORGANISATION = "organisation"  # b2b
    PERSON = "person"  # b2c


class PartnerRole(enum.StrEnum):
    CUSTOMER = "customer"
    SUPPLIER = "supplier"
    COMPETITOR = "competitor"
    OTHER = "other"


class CustomerStatus(enum.StrEnum):
    POTENTIAL = "potential"
    EXISTING = "existing"
    FORMER = "former"


class DealKind(enum.StrEnum):
    TYPICAL = "typical"
    MANUAL = "manual"
    PROJECT = "project"  # the non-process deal: no stages, tasks and interactions only


class DealStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    WON = "won"
    LOST = "lost"


class ClaimStatus(enum.StrEnum):
    TRIAGE = "triage"
    INVESTIGATION = "investigation"
    RESOLUTION = "resolution"
    INFORMING = "informing"
    CLOSED = "closed"


class InteractionKind(enum.StrEnum):
    MEETING = "meeting"
    CALL_IN = "call_in"
    CALL_OUT = "call_out"
    EMAIL = "email"
    LETTER = "letter"
    NOTE = "note"


class InteractionStatus(enum.StrEnum):
    PLANNED = "planned"
    DONE = "done"
    CANCELLED = "cancelled"


class CustomerKeyKind(enum.StrEnum):
    """What a duplicate-check key was taken from (processes/customers.py)."""

    NAME = "name"
    INN = "inn"
    PHONE = "phone"
    EMAIL = "email"


class MoveDirection(enum.StrEnum):
    """How a deal's stage changed (processes/stages.py ``move_direction``)."""

    START = "start"
    FORWARD = "forward"  # to the next stage
    SKIP = "skip"  # over stages
    BACK = "back"
    WON = "won"
    LOST = "lost"


class Customer(Base):
    """A partner: mostly customers, but also suppliers and competitors (claims come from any)."""

    __tablename__ = "customers"
    __table_args__ = (Index("ix_customers_curator", "curator_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[CustomerKind] = mapped_column(string_enum(CustomerKind, 20))
    partner_role: Mapped[PartnerRole] = mapped_column(string_enum(PartnerRole, 20), default=PartnerRole.CUSTOMER)
    name: Mapped[str] = mapped_column(String(300))
    inn: Mapped[str | None] = mapped_column(String(12), index=True)
    status: Mapped[CustomerStatus] = mapped_column(string_enum(CustomerStatus, 20), default=CustomerStatus.POTENTIAL)
    curator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    relationship_stage: Mapped[str | None] = mapped_column(String(100))
    importance: Mapped[str | None] = mapped_column(String(20))  # A, B, C
    category: Mapped[str | None] = mapped_column(String(100))
    phones: Mapped[list[str]] = mapped_column(JSON, default=list)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{"kind": "legal" | "postal" | "delivery", "text": "..."}]
    addresses: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(150))

    curator: Mapped[User | None] = relationship(lazy="joined")
    contacts: Mapped[list[ContactPerson]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", order_by="ContactPerson.id"
    )


class ContactPerson(Base):
    __tablename__ = "contact_persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(300))
    position: Mapped[str | None] = mapped_column(String(200))
    decision_role: Mapped[str | None] = mapped_column(String(100))  # decision maker, influencer, user ...
    phones: Mapped[list[str]] = mapped_column(JSON, default=list)
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    birthday: Mapped[date | None] = mapped_column(Date)

    customer: Mapped[Customer] = relationship(back_populates="contacts")


class CustomerKey(Base):
    """Normalised name, INN, phone and e-mail of a customer and its contacts: the duplicate
    check looks these up by index instead of scanning the customers."""

    __tablename__ = "customer_keys"
    __table_args__ = (
        Index("ix_customer_keys_lookup", "kind", "value"),
        UniqueConstraint("customer_id", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    kind: Mapped[CustomerKeyKind] = mapped_column(string_enum(CustomerKeyKind, 10))
    value: Mapped[str] = mapped_column(String(320))


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_customer", "customer_id"),
        Index("ix_deals_curator_status", "curator_id", "status"),
        # The analytics (processes.analytics): the funnel's cohort (opened in a period:
        # everyone's, with all that the funnel counts them by, or that of some curators),
        # the comparison of managers (opened or closed in a period).
        Index("ix_deals_funnel", "created_at", "kind", "status", "current_stage", "lost_reason", "furthest_stage",
              "amount"),
        Index("ix_deals_curator_created", "curator_id", "created_at"),
        Index("ix_deals_closed", "closed_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(30), unique=True)
    kind: Mapped[DealKind] = mapped_column(string_enum(DealKind, 20))
    title: Mapped[str] = mapped_column(String(300))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    curator_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    status: Mapped[DealStatus] = mapped_column(string_enum(DealStatus, 20), default=DealStatus.IN_PROGRESS)
    current_stage: Mapped[str | None] = mapped_column(String(40))
    stage_entered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lost_reason: Mapped[str | None] = mapped_column(String(40))
    lost_comment: Mapped[str | None] = mapped_column(Text)
    # The process that runs the deal; none for a non-process (project) deal.
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(150))
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The furthest stage the deal has entered (won once won; a loss or a step back leaves
    # it): derived from its moves by processes.crm, for the funnel's widths.
    furthest_stage: Mapped[str | None] = mapped_column(String(40))

    customer: Mapped[Customer] = relationship()
    curator: Mapped[User] = relationship(lazy="joined")
    plan: Mapped[list[DealStagePlan]] = relationship(cascade="all, delete-orphan", order_by="DealStagePlan.planned_end")


class DealStagePlan(Base):
    """S4: by when each stage of the deal should be done."""

    __tablename__ = "deal_stage_plans"

    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True)
    stage: Mapped[str] = mapped_column(String(40), primary_key=True)
    planned_end: Mapped[date] = mapped_column(Date)


class DealMove(Base):
    """Every stage change of a deal: from, to, who, when, why (S2)."""

    __tablename__ = "deal_moves"
    __table_args__ = (
        # A deal's moves in order; covering for the funnel of some curators' deals too.
        Index("ix_deal_moves_deal", "deal_id", "id", "to_stage", "first_entry", "stay_days"),
        # Covering for the funnel of everyone's deals (processes.analytics): a range of it
        # per stage and kind holds the stays of the deals opened in a period.
        Index("ix_deal_moves_funnel", "to_stage", "deal_kind", "deal_created_at", "first_entry", "stay_days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    from_stage: Mapped[str | None] = mapped_column(String(40))
    to_stage: Mapped[str] = mapped_column(String(40))
    direction: Mapped[MoveDirection] = mapped_column(string_enum(MoveDirection, 10))
    moved_by: Mapped[str | None] = mapped_column(String(150))
    moved_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    # Derived for the funnel (processes.analytics), written by processes.crm in the
    # transaction that records the move or the next one: how long the deal stayed in the
    # stage (days, with the fraction, to its next move; None while it is still there, and
    # on won and lost), whether this is the deal's first entry into it, and the deal's kind
    # and opening moment, the keys of the funnel's cohorts, which never change.
    stay_days: Mapped[float | None] = mapped_column(Float)
    first_entry: Mapped[bool] = mapped_column(Boolean)
    deal_kind: Mapped[DealKind] = mapped_column(string_enum(DealKind, 20))
    deal_created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DealTask(Base):
    """A task of a non-process deal: a ``project_task`` instance whose work item the owner sees."""

    __tablename__ = "deal_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), unique=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(150))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    result: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str | None] = mapped_column(String(150))


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (Index("ix_claims_customer", "customer_id"), Index("ix_claims_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(30), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    complainant: Mapped[str] = mapped_column(String(300))  # who complained (a contact, a person)
    guilty_department: Mapped[str | None] = mapped_column(String(150))
    guilty_employee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    essence: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(String(100))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id"))
    status: Mapped[ClaimStatus] = mapped_column(string_enum(ClaimStatus, 20), default=ClaimStatus.TRIAGE)
    responsible_officer: Mapped[str | None] = mapped_column(String(150))
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    registered_by: Mapped[str | None] = mapped_column(String(150))  # None: the customer, self-service
    response_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolution: Mapped[str | None] = mapped_column(String(20))  # satisfied, partly_satisfied, rejected
    outcome: Mapped[str | None] = mapped_column(Text)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), unique=True)

    customer: Mapped[Customer] = relationship()
    guilty_employee: Mapped[User | None] = relationship(lazy="joined")
    activities: Mapped[list[ClaimActivity]] = relationship(cascade="all, delete-orphan", order_by="ClaimActivity.id")
    attachments: Mapped[list[ClaimAttachment]] = relationship(cascade="all, delete-orphan",
                                                              order_by="ClaimAttachment.id")


class ClaimActivity(Base):
    """One activity of a claim's investigation plan (C2), done as a work item."""

    __tablename__ = "claim_activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id"), unique=True)
    owner: Mapped[str] = mapped_column(String(150))
    due_on: Mapped[date] = mapped_column(Date)
    description: Mapped[str] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ClaimAttachment(Base):
    """A file attached to a claim. Kept in the database so a claim and its files commit together."""

    __tablename__ = "claim_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    claim_id: Mapped[int] = mapped_column(ForeignKey("claims.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int]
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)


class Interaction(Base):
    """D3/C3: one entry of a customer's timeline."""

    __tablename__ = "interactions"
    __table_args__ = (
        Index("ix_interactions_customer_at", "customer_id", "at"),
        Index("ix_interactions_deal", "deal_id"),
        Index("ix_interactions_claim", "claim_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    kind: Mapped[InteractionKind] = mapped_column(string_enum(InteractionKind, 20))
    status: Mapped[InteractionStatus] = mapped_column(string_enum(InteractionStatus, 20))
    subject: Mapped[str] = mapped_column(String(300))
    notes: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it happened or is planned
    employee: Mapped[str | None] = mapped_column(String(150))
    contact_person_id: Mapped[int | None] = mapped_column(ForeignKey("contact_persons.id", ondelete="SET NULL"))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"))
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("claims.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CuratorChange(Base):
    """E3: a customer handed from one curator to another, with what moved along."""

    __tablename__ = "curator_changes"
    __table_args__ = (Index("ix_curator_changes_customer", "customer_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    from_user: Mapped[str | None] = mapped_column(String(150))
    to_user: Mapped[str] = mapped_column(String(150))
    changed_by: Mapped[str] = mapped_column(String(150))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    moved_work_items: Mapped[list[int]] = mapped_column(JSON, default=list)
