"""Messages between process instances: what was published, who received it, who waits for
which message, and which processes a message starts (engine/runtime/messages.py); and the
history's two new event types, message_sent and message_received.

No existing row changes. Processes deployed before this revision that have message start
events start by message once they are deployed again (deploying the same files records
their start events).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.migrations import check_constraint_name

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_EVENT_TYPES = (
    "instance_started", "instance_completed", "task_completed", "work_item_created", "work_item_claimed",
    "work_item_completed", "work_item_reassigned", "work_item_cancelled", "stage_entered", "stage_left",
    "timer_fired", "escalated",
)
_MESSAGE_EVENT_TYPES = ("message_sent", "message_received")
MESSAGE_STATUSES = ("pending", "delivered", "expired")


def _event_types_check(types: tuple[str, ...]) -> None:
    # Dropped and made again in one batch: SQLite rebuilds the (large) history table once.
    name = check_constraint_name("history_events", "type")
    with op.batch_alter_table("history_events") as batch:
        batch.drop_constraint(name, type_="check")
        batch.create_check_constraint(name, sa.column("type").in_(types))


def upgrade() -> None:
    _event_types_check((*_EVENT_TYPES, *_MESSAGE_EVENT_TYPES))
    op.create_table(
        "published_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("correlation_key", sa.String(length=200), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sender_instance_id", sa.Integer(), nullable=True),
        sa.Column("sender_element", sa.String(length=200), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(sa.column("status").in_(MESSAGE_STATUSES),
                           name=check_constraint_name("published_messages", "status")),
        sa.ForeignKeyConstraint(["sender_instance_id"], ["process_instances.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_published_messages_waiting", "published_messages", ["status", "name", "correlation_key"])
    op.create_index("ix_published_messages_status_expires", "published_messages", ["status", "expires_at"])
    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("element", sa.String(length=200), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["published_messages.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "instance_id"),
    )
    op.create_index("ix_message_deliveries_instance_id", "message_deliveries", ["instance_id"])
    op.create_table(
        "message_subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("element", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("correlation_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id", "task_id", "name"),
    )
    op.create_index("ix_message_subscriptions_name_key", "message_subscriptions", ["name", "correlation_key"])
    op.create_table(
        "message_start_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("process_key", sa.String(length=200), nullable=False),
        sa.Column("element", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["definition_id"], ["process_definitions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("definition_id", "element"),
    )
    op.create_index("ix_message_start_events_process_key", "message_start_events", ["process_key"])
    op.create_index("ix_message_start_events_name", "message_start_events", ["name"])


def downgrade() -> None:
    op.drop_table("message_start_events")
    op.drop_table("message_subscriptions")
    op.drop_table("message_deliveries")
    op.drop_table("published_messages")
    # The history of messages cannot stay under the old CHECK constraint: it goes with the tables.
    op.get_bind().execute(sa.text("DELETE FROM history_events WHERE type IN ('message_sent', 'message_received')"))
    _event_types_check(_EVENT_TYPES)
