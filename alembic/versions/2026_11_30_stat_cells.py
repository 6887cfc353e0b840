"""stat cells: summary counts that statistics are read from

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 03:40:00

Existing responses are counted into the new table by `hearme db upgrade` itself
(`service.database.Database.upgrade` rebuilds the cells of every survey whose cells are
missing), so that the counting rules live in one place, `service/stats/cells.py`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stat_cell',
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('value', sa.String(length=80), nullable=False),
    sa.Column('by_question', sa.String(length=64), nullable=False),
    sa.Column('by_value', sa.String(length=80), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.String(length=64), nullable=False),
    sa.Column('shard', sa.SmallInteger(), nullable=False),
    sa.Column('n', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('survey_id', 'question_id', 'by_question', 'by_value', 'site', 'wave', 'value', 'shard', name=op.f('pk_stat_cell'))
    )


def downgrade() -> None:
    op.drop_table('stat_cell')
