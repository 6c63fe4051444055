"""Analytics: what the funnel derives from each deal's moves, kept with the moves; indexes
for the funnel and the comparison of managers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# The funnel's order as it was when this migration was written (processes.stages), won last.
FUNNEL_ORDER = ('first_contact', 'needs_analysis', 'classification', 'commercial_offer', 'negotiation', 'contract',
                'payment', 'shipment', 'won')


def upgrade() -> None:
    with op.batch_alter_table('deal_moves', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stay_days', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('first_entry', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('deal_kind', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('deal_created_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('furthest_stage', sa.String(length=40), nullable=True))

    # The moves recorded so far, in the order they were recorded (by id): a stay ends at
    # the deal's next move, the latest move's stay is still going on.
    following = ("(SELECT following.moved_at FROM deal_moves AS following WHERE following.deal_id = deal_moves.deal_id"
                 " AND following.id > deal_moves.id ORDER BY following.id LIMIT 1)")
    if op.get_bind().dialect.name == 'postgresql':
        stay_days = f"EXTRACT(EPOCH FROM ({following} - deal_moves.moved_at)) / 86400"
    else:
        stay_days = f"julianday({following}) - julianday(deal_moves.moved_at)"
    op.execute(f"""
        UPDATE deal_moves SET
            stay_days = {stay_days},
            first_entry = NOT EXISTS (
                SELECT 1 FROM deal_moves AS earlier WHERE earlier.deal_id = deal_moves.deal_id
                AND earlier.to_stage = deal_moves.to_stage AND earlier.id < deal_moves.id),
            deal_kind = (SELECT deals.kind FROM deals WHERE deals.id = deal_moves.deal_id),
            deal_created_at = (SELECT deals.created_at FROM deals WHERE deals.id = deal_moves.deal_id)
    """)
    position = " ".join(f"WHEN '{code}' THEN {index}" for index, code in enumerate(FUNNEL_ORDER))
    stages = ", ".join(f"'{code}'" for code in FUNNEL_ORDER)
    op.execute(f"""
        UPDATE deals SET furthest_stage = (
            SELECT deal_moves.to_stage FROM deal_moves
            WHERE deal_moves.deal_id = deals.id AND deal_moves.to_stage IN ({stages})
            ORDER BY CASE deal_moves.to_stage {position} END DESC LIMIT 1)
    """)

    with op.batch_alter_table('deal_moves', schema=None) as batch_op:
        batch_op.alter_column('first_entry', existing_type=sa.Boolean(), nullable=False)
        batch_op.alter_column('deal_kind', existing_type=sa.String(length=20), nullable=False)
        batch_op.alter_column('deal_created_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.drop_index('ix_deal_moves_deal')
        batch_op.create_index('ix_deal_moves_deal', ['deal_id', 'id', 'to_stage', 'first_entry', 'stay_days'],
                              unique=False)
        batch_op.create_index('ix_deal_moves_funnel',
                              ['to_stage', 'deal_kind', 'deal_created_at', 'first_entry', 'stay_days'], unique=False)
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_closed', ['closed_at'], unique=False)
        batch_op.create_index('ix_deals_funnel', ['created_at', 'kind', 'status', 'current_stage', 'lost_reason',
                                                  'furthest_stage', 'amount'], unique=False)
        batch_op.create_index('ix_deals_curator_created', ['curator_id', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_curator_created')
        batch_op.drop_index('ix_deals_funnel')
        batch_op.drop_index('ix_deals_closed')
        batch_op.drop_column('furthest_stage')

    with op.batch_alter_table('deal_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_deal_moves_funnel')
        batch_op.drop_index('ix_deal_moves_deal')
        batch_op.create_index('ix_deal_moves_deal', ['deal_id', 'id'], unique=False)
        batch_op.drop_column('deal_created_at')
        batch_op.drop_column('deal_kind')
        batch_op.drop_column('first_entry')
        batch_op.drop_column('stay_days')
