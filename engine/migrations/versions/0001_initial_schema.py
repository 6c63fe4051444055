"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('process_definitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('sources', sa.JSON(), nullable=False),
    sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deployed_by', sa.String(length=150), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key', 'version')
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=150), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('password_hash', sa.String(length=300), nullable=True),
    sa.Column('roles', sa.String(length=100), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('manager_id', sa.Integer(), nullable=True),
    sa.Column('locale', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['manager_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('groups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=150), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('head_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['head_id'], ['users.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('process_instances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('definition_id', sa.Integer(), nullable=False),
    sa.Column('process_key', sa.String(length=200), nullable=False),
    sa.Column('business_key', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('state', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('current_stage', sa.String(length=300), nullable=True),
    sa.Column('started_by', sa.String(length=150), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_wakeup_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['definition_id'], ['process_definitions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_process_instances_business_key'), ['business_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_process_instances_definition_id'), ['definition_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_process_instances_process_key'), ['process_key'], unique=False)
        batch_op.create_index('ix_process_instances_status_next_wakeup', ['status', 'next_wakeup_at'], unique=False)

    op.create_table('memberships',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['groups.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'group_id')
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_group_id'), ['group_id'], unique=False)

    op.create_table('work_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.String(length=36), nullable=False),
    sa.Column('task_spec', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('stage', sa.String(length=300), nullable=False),
    sa.Column('lane', sa.String(length=200), nullable=True),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by_id', sa.Integer(), nullable=True),
    sa.Column('submitted_data', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['assignee_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['completed_by_id'], ['users.id'], ),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('task_id')
    )
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.create_index('ix_work_items_assignee_status_due', ['assignee_id', 'status', 'due_at'], unique=False)
        batch_op.create_index('ix_work_items_instance_status', ['instance_id', 'status'], unique=False)
        batch_op.create_index('ix_work_items_status_due', ['status', 'due_at'], unique=False)

    op.create_table('history_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sa.Integer(), nullable=False),
    sa.Column('work_item_id', sa.Integer(), nullable=True),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=150), nullable=True),
    sa.Column('task_spec', sa.String(length=200), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['instance_id'], ['process_instances.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('history_events', schema=None) as batch_op:
        batch_op.create_index('ix_history_events_instance', ['instance_id', 'id'], unique=False)
        batch_op.create_index('ix_history_events_type_at', ['type', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_history_events_work_item_id'), ['work_item_id'], unique=False)

    op.create_table('work_item_candidates',
    sa.Column('work_item_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['work_item_id'], ['work_items.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('work_item_id', 'kind', 'name')
    )
    with op.batch_alter_table('work_item_candidates', schema=None) as batch_op:
        batch_op.create_index('ix_work_item_candidates_lookup', ['kind', 'name', 'work_item_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('work_item_candidates', schema=None) as batch_op:
        batch_op.drop_index('ix_work_item_candidates_lookup')

    op.drop_table('work_item_candidates')
    with op.batch_alter_table('history_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_history_events_work_item_id'))
        batch_op.drop_index('ix_history_events_type_at')
        batch_op.drop_index('ix_history_events_instance')

    op.drop_table('history_events')
    with op.batch_alter_table('work_items', schema=None) as batch_op:
        batch_op.drop_index('ix_work_items_status_due')
        batch_op.drop_index('ix_work_items_instance_status')
        batch_op.drop_index('ix_work_items_assignee_status_due')

    op.drop_table('work_items')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_group_id'))

    op.drop_table('memberships')
    with op.batch_alter_table('process_instances', schema=None) as batch_op:
        batch_op.drop_index('ix_process_instances_status_next_wakeup')
        batch_op.drop_index(batch_op.f('ix_process_instances_process_key'))
        batch_op.drop_index(batch_op.f('ix_process_instances_definition_id'))
        batch_op.drop_index(batch_op.f('ix_process_instances_business_key'))

    op.drop_table('process_instances')
    op.drop_table('groups')
    op.drop_table('users')
    op.drop_table('process_definitions')
