"""A partial index of the unassigned open work items, for the groups' queues in the inbox.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNASSIGNED_AND_OPEN = sa.text("assignee_id IS NULL AND status = 'open'")


def upgrade() -> None:
    op.create_index("ix_work_items_open_queue", "work_items", ["id", "due_at", "priority"],
                    postgresql_where=UNASSIGNED_AND_OPEN, sqlite_where=UNASSIGNED_AND_OPEN)


def downgrade() -> None:
    op.drop_index("ix_work_items_open_queue", table_name="work_items")
