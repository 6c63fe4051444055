"""The engine's tables: definitions, instances, work items, history, and the people.

Schema changes go through Alembic (``engine/migrations``); a test checks that the
migrations and these models agree.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db import Base, UTCDateTime, string_enum


class InstanceStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ItemStatus(enum.StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class EventType(enum.StrEnum):
    INSTANCE_STARTED = "instance_started"
    INSTANCE_COMPLETED = "instance_completed"
    TASK_COMPLETED = "task_completed"
    WORK_ITEM_CREATED = "work_item_created"
    WORK_ITEM_CLAIMED = "work_item_claimed"
    WORK_ITEM_COMPLETED = "work_item_completed"
    WORK_ITEM_REASSIGNED = "work_item_reassigned"
    WORK_ITEM_CANCELLED = "work_item_cancelled"
    STAGE_ENTERED = "stage_entered"
    STAGE_LEFT = "stage_left"
    TIMER_FIRED = "timer_fired"
    # A rung of a deadline's escalation ladder fired, or was skipped (engine/deadlines/escalation.py).
    ESCALATED = "escalated"
    # A message between instances was published, or received (engine/runtime/messages.py).
    MESSAGE_SENT = "message_sent"
    MESSAGE_RECEIVED = "message_received"


class Role(enum.StrEnum):
    EMPLOYEE = "employee"
    MANAGER = "manager"
    DESIGNER = "designer"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(default=True)
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    locale: Mapped[str] = mapped_column(String(10), default="ru")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    manager: Mapped[User | None] = relationship(remote_side=[id])
    groups: Mapped[list[Group]] = relationship(secondary="memberships", back_populates="members")
    # Loaded on access: the queries that read a user's roles load them with the user
    # (people.find_user, webui's sign-in), the others do not pay for them.
    user_roles: Mapped[list[UserRole]] = relationship(cascade="all, delete-orphan", passive_deletes=True)

    @property
    def role_set(self) -> frozenset[Role]:
        return frozenset(grant.role for grant in self.user_roles)


class UserRole(Base):
    """One role of a user; a user has any number, none included."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[Role] = mapped_column(string_enum(Role, 20), primary_key=True)


class Group(Base):
    """A department or team; candidate groups and BPMN lanes name groups."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(150), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    head_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    head: Mapped[User | None] = relationship(foreign_keys=[head_id])
    members: Mapped[list[User]] = relationship(secondary="memberships", back_populates="groups")


class Membership(Base):
    __tablename__ = "memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True)


class ProcessDefinition(Base):
    """One deployed version of one process, with the BPMN/DMN sources it was parsed from."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int]
    name: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64))
    # {file name: source text} of every file this process needs (its own, called processes, decisions).
    sources: Mapped[dict[str, str]] = mapped_column(JSON, deferred=True)
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deployed_by: Mapped[str | None] = mapped_column(String(150))


class ProcessInstance(Base):
    __tablename__ = "process_instances"
    __table_args__ = (
        Index("ix_process_instances_status_next_wakeup", "status", "next_wakeup_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[InstanceStatus] = mapped_column(string_enum(InstanceStatus, 20), default=InstanceStatus.RUNNING)
    # SpiffWorkflow's serialized workflow, without the spec (that lives in the definition).
    state: Mapped[str] = mapped_column(Text)
    # Incremented by every step (engine.runtime.statements.versioned_update, the only writer of
    # an instance after its start): a step whose UPDATE finds another version lost a race it
    # should not have been in, and its transaction is retried.
    version: Mapped[int] = mapped_column(default=1)
    current_stage: Mapped[str | None] = mapped_column(String(300))
    started_by: Mapped[str | None] = mapped_column(String(150))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The earliest moment a timer of this instance fires; the scheduler reads only due rows.
    next_wakeup_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")


class WorkItem(Base):
    """A human step: one READY user or manual task of an instance."""

    __tablename__ = "work_items"
    __table_args__ = (
        # The comparison of managers reads a window's items from one of the first two alone:
        # SQLite a person's (or everyone's, skipping through the assignees), PostgreSQL
        # everyone's by (status, due).
        Index("ix_work_items_assignee_status_due_completed", "assignee_id", "status", "due_at", "completed_at"),
        Index("ix_work_items_status_due_assignee_completed", "status", "due_at", "assignee_id", "completed_at"),
        Index("ix_work_items_instance_status", "instance_id", "status"),
        # The queues' items: the inbox joins a group's candidate rows to it and reads due
        # and priority from the index alone, without visiting the busy table.
        Index("ix_work_items_open_queue", "id", "due_at", "priority",
              postgresql_where=text("assignee_id IS NULL AND status = 'open'"),
              sqlite_where=text("assignee_id IS NULL AND status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(36), unique=True)
    task_spec: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(300))
    stage: Mapped[str] = mapped_column(String(300))
    lane: Mapped[str | None] = mapped_column(String(200))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    priority: Mapped[int] = mapped_column(default=50)
    status: Mapped[ItemStatus] = mapped_column(string_enum(ItemStatus, 20), default=ItemStatus.OPEN)
    # Incremented by claim, reassign and completion: a form opened before them is stale.
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    submitted_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    instance: Mapped[ProcessInstance] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id], lazy="joined")
    completed_by: Mapped[User | None] = relationship(foreign_keys=[completed_by_id], lazy="joined")
    candidates: Mapped[list[WorkItemCandidate]] = relationship(
        cascade="all, delete-orphan", order_by="WorkItemCandidate.name"
    )

    @property
    def candidate_groups(self) -> list[str]:
        return [c.name for c in self.candidates if c.kind == CandidateKind.GROUP]

    @property
    def candidate_users(self) -> list[str]:
        return [c.name for c in self.candidates if c.kind == CandidateKind.USER]


class CandidateKind(enum.StrEnum):
    USER = "user"
    GROUP = "group"


class WorkItemCandidate(Base):
    """Who may take an unassigned item: a group or a user by name (the BPMN's words)."""

    __tablename__ = "work_item_candidates"
    __table_args__ = (Index("ix_work_item_candidates_lookup", "kind", "name", "work_item_id"),)

    work_item_id: Mapped[int] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[CandidateKind] = mapped_column(string_enum(CandidateKind, 10), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)


class HistoryEvent(Base):
    """Append-only: what happened to an instance, who did it and when."""

    __tablename__ = "history_events"
    __table_args__ = (
        Index("ix_history_events_instance", "instance_id", "id"),
        Index("ix_history_events_type_at", "type", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"), index=True)
    type: Mapped[EventType] = mapped_column(string_enum(EventType, 40))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str | None] = mapped_column(String(150))
    task_spec: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


# -- deadlines, escalations and notifications (engine/deadlines/escalation.py, engine/outbox/notifications.py) --


class EscalationStatus(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    # The item was closed, or a later level made this one pointless, before it was due.
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class EscalationLevel(enum.StrEnum):
    """The rungs of a deadline's ladder, in the order they fire (engine/deadlines/escalation.py)."""

    REMINDER = "reminder"
    BREACH = "breach"
    HEAD = "head"


class Escalation(Base):
    """One rung of a deadline's escalation ladder, planned when the deadline is set.

    The sweep reads only pending rows that are due (``ix_escalations_status_due_level_assignee``,
    whose further columns serve the comparison of managers), so its cost follows the
    number of breaches, not of open items. ``dedupe_key`` is unique
    per (work item or instance deadline, level): a rung can be planned and fired once."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_status_due_level_assignee", "status", "due_at", "level", "assignee_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    # None for a deadline of the whole instance (e.g. a claim's response deadline).
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"), index=True)
    level: Mapped[EscalationLevel] = mapped_column(string_enum(EscalationLevel, 20))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The deadline this rung belongs to (the item's or the instance's due moment).
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[EscalationStatus] = mapped_column(string_enum(EscalationStatus, 20),
                                                     default=EscalationStatus.PENDING)
    # The ladder's settings for this rung: recipients' rules, channels, priority, substitute.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fired_by: Mapped[str | None] = mapped_column(String(200))
    # Whom a fired rung of an item was about: the item's assignee when it fired (before a
    # head-of-department rung reassigns it). The escalations a person received.
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", name="fk_escalations_assignee_id_users"))
    # What firing did: who was notified, by which channels, what changed.
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class InstanceDeadline(Base):
    """A deadline for a whole instance (a claim's response time), beside its items' own."""

    __tablename__ = "instance_deadlines"
    __table_args__ = (UniqueConstraint("instance_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who answers for the deadline: reminded before, told at the breach with their manager.
    responsible: Mapped[str | None] = mapped_column(String(150))
    team: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Notification(Base):
    """An in-app notification: what a user sees in the bell, with an unread count."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    work_item_id: Mapped[int | None] = mapped_column(ForeignKey("work_items.id", ondelete="CASCADE"))
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry
    # A sender stopped between claiming and recording the result: it may have been sent,
    # so it is not sent again (never twice); an admin decides.
    UNCERTAIN = "uncertain"


class OutboxMessage(Base):
    """A message to send outside the database (e-mail), written in the step's transaction
    and sent after the commit by the outbox sender."""

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    notification_id: Mapped[int | None] = mapped_column(ForeignKey("notifications.id", ondelete="SET NULL"))
    status: Mapped[OutboxStatus] = mapped_column(string_enum(OutboxStatus, 20), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The SMTP server's answer, or why the last attempt failed.
    result: Mapped[str | None] = mapped_column(Text)

    notification: Mapped[Notification | None] = relationship()


# -- the REST API's tokens and the schedulers' heartbeats (webui/api, engine/scheduling/heartbeat.py) --


class ApiToken(Base):
    """A personal token for the REST API. Only the SHA-256 of the secret is kept: the
    secret is shown once, when it is made. A revoked or expired token admits nobody."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, so that a person can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Updated at most every few minutes: a write per request would cost more than it tells.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(150))

    user: Mapped[User] = relationship()


class SchedulerHeartbeat(Base):
    """One row per running scheduler (``crmflow worker`` or one embedded in a server),
    refreshed every few seconds: /healthz and /metrics tell from it, in any process,
    whether timers and escalations are being handled."""

    __tablename__ = "scheduler_heartbeats"

    worker: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RateLimitCounter(Base):
    """A fixed window of a rate limit (Flask-Limiter's, in webui/limits.py) for one key,
    the limit and who it counts (a client's address): hits so far and when the window
    ends. In the database so that every web process counts in the same row."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(500), primary_key=True)
    count: Mapped[int]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


# -- messages between instances (engine/runtime/messages.py) --------------------------------


class MessageStatus(enum.StrEnum):
    PENDING = "pending"  # kept for an instance that comes to wait for it, until expires_at
    DELIVERED = "delivered"
    EXPIRED = "expired"


class PublishedMessage(Base):
    """A message an instance (or a caller of the engine) published: kept until it is
    delivered, and after that as the record of who sent what to whom."""

    __tablename__ = "published_messages"
    __table_args__ = (
        Index("ix_published_messages_waiting", "status", "name", "correlation_key"),
        Index("ix_published_messages_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # '' when the message has no key.
    correlation_key: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    sender_instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id", ondelete="SET NULL"))
    sender_element: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[MessageStatus] = mapped_column(string_enum(MessageStatus, 20), default=MessageStatus.PENDING)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MessageDelivery(Base):
    """A message handed to one instance: at most once per message and instance. ``error`` is
    why the receiving step failed (it was rolled back; the instance still waits)."""

    __tablename__ = "message_deliveries"
    __table_args__ = (UniqueConstraint("message_id", "instance_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("published_messages.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"), index=True)
    element: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class MessageSubscription(Base):
    """A task of a running instance that waits for a message of that name and key: kept in
    step with the instance by every step, so that a published message finds its receivers
    by index instead of loading instances."""

    __tablename__ = "message_subscriptions"
    __table_args__ = (
        UniqueConstraint("instance_id", "task_id", "name"),
        Index("ix_message_subscriptions_name_key", "name", "correlation_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id", ondelete="CASCADE"))
    task_id: Mapped[str] = mapped_column(String(36))
    element: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MessageStartEvent(Base):
    """A message start event of the latest version of a process: a message of its name that
    no running instance waits for starts an instance there."""

    __tablename__ = "message_start_events"
    __table_args__ = (UniqueConstraint("definition_id", "element"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id", ondelete="CASCADE"))
    process_key: Mapped[str] = mapped_column(String(200), index=True)
    element: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200), index=True)
