"""The domain's status-like columns accept only their enum's values.

As the engine's revision 0007 does for its tables: the models read these columns as enum
members, a CHECK constraint per column keeps out any other string, the stored values do
not change, and a row outside its column's list stops the upgrade before anything
changes, with the table, column and values named.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

from engine.migrations import add_value_checks, drop_value_checks, refuse_unless_empty, values_outside

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

DEAL_KINDS = ("typical", "manual", "project")
ALLOWED = {
    "customers": {
        "kind": ("organisation", "person"),
        "partner_role": ("customer", "supplier", "competitor", "other"),
        "status": ("potential", "existing", "former"),
    },
    "customer_keys": {"kind": ("name", "inn", "phone", "email")},
    "deals": {"kind": DEAL_KINDS, "status": ("in_progress", "won", "lost")},
    "deal_moves": {"direction": ("start", "forward", "skip", "back", "won", "lost"), "deal_kind": DEAL_KINDS},
    "claims": {"status": ("triage", "investigation", "resolution", "informing", "closed")},
    "interactions": {
        "kind": ("meeting", "call_in", "call_out", "email", "letter", "note"),
        "status": ("planned", "done", "cancelled"),
    },
}


def upgrade() -> None:
    refuse_unless_empty(revision, values_outside(op.get_bind(), ALLOWED))
    add_value_checks(ALLOWED)


def downgrade() -> None:
    drop_value_checks(ALLOWED)
