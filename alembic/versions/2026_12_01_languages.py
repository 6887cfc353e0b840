"""languages: a response's language; per-language texts of codebooks and release labels

Every new column is nullable and means "as before" when null: a survey without
languages, a response without a language, a codebook of plain strings, and a release
published before languages existed all read back unchanged.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('response') as batch:
        batch.add_column(sa.Column('language', sa.String(length=64), nullable=True))
    with op.batch_alter_table('codebook_theme') as batch:
        batch.add_column(sa.Column('texts', sa.JSON(), nullable=True))
    with op.batch_alter_table('codebook_category') as batch:
        batch.add_column(sa.Column('texts', sa.JSON(), nullable=True))
    with op.batch_alter_table('release') as batch:
        batch.add_column(sa.Column('labels', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('release') as batch:
        batch.drop_column('labels')
    with op.batch_alter_table('codebook_category') as batch:
        batch.drop_column('texts')
    with op.batch_alter_table('codebook_theme') as batch:
        batch.drop_column('texts')
    with op.batch_alter_table('response') as batch:
        batch.drop_column('language')
