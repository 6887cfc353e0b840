"""codebooks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:59:09.394967
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('codebook',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('question_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], name=op.f('fk_codebook_survey_id_survey')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebook')),
    sa.UniqueConstraint('survey_id', 'question_id', name=op.f('uq_codebook_survey_id_question_id'))
    )
    op.create_table('codebook_category',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('codebook_id', sa.Integer(), nullable=False),
    sa.Column('theme_id', sa.String(length=64), nullable=False),
    sa.Column('category_id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('origin', sa.String(length=16), nullable=False),
    sa.Column('keywords', sa.JSON(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['codebook_id'], ['codebook.id'], name=op.f('fk_codebook_category_codebook_id_codebook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebook_category')),
    sa.UniqueConstraint('codebook_id', 'category_id', name=op.f('uq_codebook_category_codebook_id_category_id'))
    )
    op.create_table('codebook_revision',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('codebook_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('themes', sa.JSON(), nullable=False),
    sa.Column('changed_by', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['codebook_id'], ['codebook.id'], name=op.f('fk_codebook_revision_codebook_id_codebook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebook_revision')),
    sa.UniqueConstraint('codebook_id', 'version', name=op.f('uq_codebook_revision_codebook_id_version'))
    )
    op.create_table('codebook_theme',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('codebook_id', sa.Integer(), nullable=False),
    sa.Column('theme_id', sa.String(length=64), nullable=False),
    sa.Column('label', sa.String(length=500), nullable=False),
    sa.Column('domain', sa.String(length=16), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['codebook_id'], ['codebook.id'], name=op.f('fk_codebook_theme_codebook_id_codebook'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_codebook_theme')),
    sa.UniqueConstraint('codebook_id', 'theme_id', name=op.f('uq_codebook_theme_codebook_id_theme_id'))
    )


def downgrade() -> None:
    op.drop_table('codebook_theme')
    op.drop_table('codebook_revision')
    op.drop_table('codebook_category')
    op.drop_table('codebook')
