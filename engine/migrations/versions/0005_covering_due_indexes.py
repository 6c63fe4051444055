"""Covering indexes for the comparison of managers: the work items' indexes on (assignee,
status, due) and (status, due) and the escalations' on (status, due) get the further
columns it reads, so that it reads a window's rows from an index alone, and a narrow index
gives an escalation's item's assignee without visiting the busy table.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# (table, old index, its columns, new index, its columns)
EXTENDED = (
    ("work_items", "ix_work_items_assignee_status_due", ["assignee_id", "status", "due_at"],
     "ix_work_items_assignee_status_due_completed", ["assignee_id", "status", "due_at", "completed_at"]),
    ("work_items", "ix_work_items_status_due", ["status", "due_at"],
     "ix_work_items_status_due_assignee_completed", ["status", "due_at", "assignee_id", "completed_at"]),
    ("escalations", "ix_escalations_status_due", ["status", "due_at"],
     "ix_escalations_status_due_level_item", ["status", "due_at", "level", "work_item_id"]),
)


def upgrade() -> None:
    for table, old, _, new, columns in EXTENDED:
        op.drop_index(old, table_name=table)
        op.create_index(new, table, columns)
    op.create_index("ix_work_items_id_assignee", "work_items", ["id", "assignee_id"])


def downgrade() -> None:
    op.drop_index("ix_work_items_id_assignee", table_name="work_items")
    for table, old, columns, new, _ in EXTENDED:
        op.drop_index(new, table_name=table)
        op.create_index(old, table, columns)
