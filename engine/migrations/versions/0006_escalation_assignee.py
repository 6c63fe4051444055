"""Each fired escalation rung keeps whom it was about: the item's assignee when it fired.

The comparison of managers counts the escalations each person received. Joining every
rung to its item for the assignee cost an index descent per escalated item, the largest
part of that page on PostgreSQL; and the item's assignee now may not be the one who held
it then (a head-of-department rung may reassign it). Rungs fired before this revision get
their item's present assignee, the best that is known of them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:  # SQLite adds a foreign key by rebuilding the table
        batch.add_column(sa.Column("assignee_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_escalations_assignee_id_users", "users", ["assignee_id"], ["id"])
    op.execute("UPDATE escalations SET assignee_id = (SELECT work_items.assignee_id FROM work_items "
               "WHERE work_items.id = escalations.work_item_id) "
               "WHERE status = 'done' AND work_item_id IS NOT NULL")
    op.drop_index("ix_escalations_status_due_level_item", table_name="escalations")
    op.create_index("ix_escalations_status_due_level_assignee", "escalations",
                    ["status", "due_at", "level", "assignee_id"])
    # It served only the join from a rung to its item's assignee.
    op.drop_index("ix_work_items_id_assignee", table_name="work_items")


def downgrade() -> None:
    op.create_index("ix_work_items_id_assignee", "work_items", ["id", "assignee_id"])
    op.drop_index("ix_escalations_status_due_level_assignee", table_name="escalations")
    op.create_index("ix_escalations_status_due_level_item", "escalations",
                    ["status", "due_at", "level", "work_item_id"])
    with op.batch_alter_table("escalations") as batch:
        batch.drop_constraint("fk_escalations_assignee_id_users", type_="foreignkey")
        batch.drop_column("assignee_id")
