"""events: the outbox the feed is read from, webhooks and their deliveries

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 09:45:00

`event_position_seq` (PostgreSQL only) hands out feed positions at commit, under the
feed's advisory lock (`service/events/outbox.py`); SQLite uses the AUTOINCREMENT key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('event',
    sa.Column('pk', BigId, nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=True),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=True),
    sa.Column('wave', sa.String(length=64), nullable=True),
    sa.Column('response_id', sa.String(length=36), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_event')),
    sa.UniqueConstraint('id', name=op.f('uq_event_id')),
    sa.UniqueConstraint('position', name=op.f('uq_event_position')),
    sqlite_autoincrement=True,
    )
    op.create_index('ix_event_occurred_at', 'event', ['occurred_at'], unique=False)
    op.create_index('ix_event_response_id', 'event', ['response_id'], unique=False)
    op.create_table('event_retention',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pruned_through', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_retention')),
    )
    op.create_table('webhook',
    sa.Column('pk', BigId, nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('url', sa.String(length=2000), nullable=False),
    sa.Column('events', sa.JSON(), nullable=False),
    sa.Column('owner_key_id', sa.Integer(), nullable=False),
    sa.Column('secret_nonce', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['owner_key_id'], ['api_key.id'], name=op.f('fk_webhook_owner_key_id_api_key')),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_webhook')),
    sa.UniqueConstraint('id', name=op.f('uq_webhook_id')),
    )
    op.create_index('ix_webhook_owner_key_id', 'webhook', ['owner_key_id'], unique=False)
    op.create_table('webhook_delivery',
    sa.Column('pk', BigId, nullable=False),
    sa.Column('webhook_pk', BigId, nullable=False),
    sa.Column('event_pk', BigId, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['webhook_pk'], ['webhook.pk'], name=op.f('fk_webhook_delivery_webhook_pk_webhook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_webhook_delivery')),
    sa.UniqueConstraint('webhook_pk', 'event_pk', name=op.f('uq_webhook_delivery_webhook_pk_event_pk')),
    )
    op.create_index('ix_webhook_delivery_status_next_attempt_at', 'webhook_delivery', ['status', 'next_attempt_at'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE SEQUENCE event_position_seq AS BIGINT')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP SEQUENCE event_position_seq')
    op.drop_index('ix_webhook_delivery_status_next_attempt_at', table_name='webhook_delivery')
    op.drop_table('webhook_delivery')
    op.drop_index('ix_webhook_owner_key_id', table_name='webhook')
    op.drop_table('webhook')
    op.drop_table('event_retention')
    op.drop_index('ix_event_response_id', table_name='event')
    op.drop_index('ix_event_occurred_at', table_name='event')
    op.drop_table('event')
