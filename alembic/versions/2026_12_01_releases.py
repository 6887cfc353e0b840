"""releases: tables frozen at publication, with the disclosure audit's state

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 09:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('release',
    sa.Column('pk', sa.Integer(), nullable=False),
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_by', sa.String(length=200), nullable=False),
    sa.Column('min_cell', sa.Integer(), nullable=False),
    sa.Column('n_responses', sa.Integer(), nullable=False),
    sa.Column('tables', sa.JSON(), nullable=False),
    sa.Column('scope_sites', sa.JSON(), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('audit_state', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['survey_id'], ['survey.id'], name=op.f('fk_release_survey_id_survey')),
    sa.PrimaryKeyConstraint('pk', name=op.f('pk_release')),
    sa.UniqueConstraint('survey_id', 'id', name=op.f('uq_release_survey_id_id'))
    )


def downgrade() -> None:
    op.drop_table('release')
