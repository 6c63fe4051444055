"""Status-like columns accept only their enum's values, and a user's roles are rows.

The models read these columns as enum members (``string_enum``); a CHECK constraint per
column keeps out any other string, whoever writes it. The values stored do not change,
so existing rows read as before. A row that holds a value outside its column's list
stops the upgrade before anything changes, with the table, column and values named.

``users.roles`` was comma-separated text; each role becomes a row of ``user_roles``
(one user, one role), so that a role is a value the database checks and a query can
find who holds it. The downgrade writes them back in the order of ``ROLES``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from engine.migrations import (
    add_value_checks,
    check_constraint_name,
    drop_value_checks,
    refuse_unless_empty,
    values_outside,
)

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

ROLES = ("employee", "manager", "designer", "admin")
ALLOWED = {
    "process_instances": {"status": ("running", "completed", "cancelled")},
    "work_items": {"status": ("open", "completed", "cancelled")},
    "work_item_candidates": {"kind": ("user", "group")},
    "history_events": {"type": (
        "instance_started", "instance_completed", "task_completed", "work_item_created", "work_item_claimed",
        "work_item_completed", "work_item_reassigned", "work_item_cancelled", "stage_entered", "stage_left",
        "timer_fired", "escalated",
    )},
    "escalations": {"level": ("reminder", "breach", "head"), "status": ("pending", "done", "cancelled", "skipped")},
    "outbox_messages": {"status": ("pending", "sending", "sent", "failed", "uncertain")},
}


def upgrade() -> None:
    connection = op.get_bind()
    users = connection.execute(sa.text("SELECT id, roles FROM users ORDER BY id")).all()
    # As User.role_set read them: empty parts were no role.
    roles_of = {user_id: list(dict.fromkeys(role for role in text.split(",") if role)) for user_id, text in users}
    problems = values_outside(connection, ALLOWED)
    unknown = defaultdict(list)
    for user_id, roles in roles_of.items():
        for role in roles:
            if role not in ROLES:
                unknown[role].append(user_id)
    if unknown:
        found = ", ".join(f"{role!r} (users {', '.join(map(str, ids))})" for role, ids in sorted(unknown.items()))
        problems.append(f"users.roles: {found}; allowed: {', '.join(ROLES)}")
    refuse_unless_empty(revision, problems)

    add_value_checks(ALLOWED)
    user_roles = op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.CheckConstraint(sa.column("role").in_(ROLES), name=check_constraint_name("user_roles", "role")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "role"),
    )
    rows = [{"user_id": user_id, "role": role} for user_id, roles in roles_of.items() for role in roles]
    if rows:
        op.bulk_insert(user_roles, rows)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("roles")


def downgrade() -> None:
    connection = op.get_bind()
    roles_of = defaultdict(set)
    for user_id, role in connection.execute(sa.text("SELECT user_id, role FROM user_roles")):
        roles_of[user_id].add(role)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("roles", sa.String(length=100), nullable=True))
    user_ids = [user_id for (user_id,) in connection.execute(sa.text("SELECT id FROM users"))]
    if user_ids:
        connection.execute(
            sa.text("UPDATE users SET roles = :roles WHERE id = :id"),
            [{"id": user_id, "roles": ",".join(r for r in ROLES if r in roles_of[user_id])} for user_id in user_ids],
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("roles", existing_type=sa.String(length=100), nullable=False)
    op.drop_table("user_roles")
    drop_value_checks(ALLOWED)
