"""Analytics: the working calendar as a table, so that SQL counts working days

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Derived rows (processes.analytics.prepare_working_days writes them on demand): no
    # foreign keys, and dropping the table loses nothing that cannot be written again.
    op.create_table('analytics_calendar_days',
    sa.Column('calendar', sa.String(length=32), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('working_day_number', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('calendar', 'day')
    )
    with op.batch_alter_table('analytics_calendar_days', schema=None) as batch_op:
        batch_op.create_index('ix_analytics_calendar_days_start', ['calendar', 'starts_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('analytics_calendar_days', schema=None) as batch_op:
        batch_op.drop_index('ix_analytics_calendar_days_start')

    op.drop_table('analytics_calendar_days')
