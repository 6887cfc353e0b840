"""web sessions: the workbench's signed-in browsers (a hash of each session token); an
index of text answers in queue order (the coding queue and its progress at scale)

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-01 12:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('web_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['key_id'], ['api_key.id'], name=op.f('fk_web_session_key_id_api_key')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_web_session')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_web_session_token_hash'))
    )
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_session_key_id'), ['key_id'], unique=False)
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.create_index(
            'ix_answer_text_queue', ['survey_id', 'question_id', 'response_pk'], unique=False,
            sqlite_where=sa.text('text IS NOT NULL'), postgresql_where=sa.text('text IS NOT NULL'),
        )


def downgrade() -> None:
    with op.batch_alter_table('answer', schema=None) as batch_op:
        batch_op.drop_index('ix_answer_text_queue')
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_key_id'))
    op.drop_table('web_session')
