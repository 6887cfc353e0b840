"""codings, consensus, outcomes, effective categories and coding categories

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ResponsePk = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _response_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ['response_pk'], ['response.pk'],
        name=op.f(f'fk_{table}_response_pk_response'), ondelete='CASCADE',
    )


def upgrade() -> None:
    op.create_table('coding',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('response_pk', ResponsePk, nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('coder', sa.String(length=200), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('coded_at', sa.DateTime(timezone=True), nullable=False),
    _response_fk('coding'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coding')),
    sa.UniqueConstraint('response_pk', 'question_id', 'coder', name=op.f('uq_coding_response_pk_question_id_coder'))
    )
    op.create_index('ix_coding_survey_id_question_id_coder', 'coding', ['survey_id', 'question_id', 'coder'], unique=False)
    op.create_table('coding_consensus',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('response_pk', ResponsePk, nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('categories', sa.JSON(), nullable=False),
    sa.Column('set_by', sa.String(length=200), nullable=False),
    sa.Column('set_at', sa.DateTime(timezone=True), nullable=False),
    _response_fk('coding_consensus'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coding_consensus')),
    sa.UniqueConstraint('response_pk', 'question_id', name=op.f('uq_coding_consensus_response_pk_question_id'))
    )
    op.create_table('coding_outcome',
    sa.Column('response_pk', ResponsePk, nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('effective', sa.JSON(), nullable=True),
    _response_fk('coding_outcome'),
    sa.PrimaryKeyConstraint('response_pk', 'question_id', name=op.f('pk_coding_outcome'))
    )
    op.create_index('ix_coding_outcome_survey_id_question_id_status', 'coding_outcome', ['survey_id', 'question_id', 'status'], unique=False)
    op.create_table('effective_category',
    sa.Column('response_pk', ResponsePk, nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('category_id', sa.String(length=64), nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('site', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.String(length=64), nullable=False),
    _response_fk('effective_category'),
    sa.PrimaryKeyConstraint('response_pk', 'question_id', 'category_id', name=op.f('pk_effective_category'))
    )
    op.create_index('ix_effective_category_survey_id_question_id_category_id', 'effective_category', ['survey_id', 'question_id', 'category_id'], unique=False)
    op.create_table('coding_category',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('coding_id', sa.Integer(), nullable=True),
    sa.Column('consensus_id', sa.Integer(), nullable=True),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('category_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['coding_id'], ['coding.id'], name=op.f('fk_coding_category_coding_id_coding'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['consensus_id'], ['coding_consensus.id'], name=op.f('fk_coding_category_consensus_id_coding_consensus'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coding_category'))
    )
    op.create_index('ix_coding_category_coding_id', 'coding_category', ['coding_id'], unique=False)
    op.create_index('ix_coding_category_consensus_id', 'coding_category', ['consensus_id'], unique=False)
    op.create_index('ix_coding_category_survey_id_question_id_category_id', 'coding_category', ['survey_id', 'question_id', 'category_id'], unique=False)


def downgrade() -> None:
    op.drop_table('coding_category')
    op.drop_table('effective_category')
    op.drop_table('coding_outcome')
    op.drop_table('coding_consensus')
    op.drop_table('coding')
