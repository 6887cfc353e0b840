"""stat rows: the narrow table, one row of small integers per response

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-01 12:40:00

Created and filled from the stored responses here, survey by survey, by the statement
that keeps the rows afterwards (`service.stats.narrow.fill`: the INSERT ... SELECT over
the answer rows of `narrow.apply`), so that the coding rules live in one place.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlmodel import Session

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SINGLE_SLOTS, MULTI_SLOTS = 32, 8


def upgrade() -> None:
    op.create_table('stat_row',
    sa.Column('survey_id', sa.String(length=64), nullable=False),
    sa.Column('response_pk', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('site', sa.SmallInteger(), nullable=False),
    sa.Column('wave', sa.SmallInteger(), nullable=False),
    *[sa.Column(f's{i}', sa.SmallInteger(), nullable=True) for i in range(SINGLE_SLOTS)],
    *[sa.Column(f'm{i}', sa.BigInteger(), nullable=True) for i in range(MULTI_SLOTS)],
    sa.Column('t', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('survey_id', 'response_pk', name=op.f('pk_stat_row')),
    sqlite_with_rowid=False,
    )
    _backfill()


def _backfill() -> None:
    from schemas.surveys import SurveyDefinition
    from service.stats import narrow
    from service.validation import compile_survey

    bind = op.get_bind()
    surveys = bind.execute(sa.text('SELECT definition, version FROM survey')).all()
    session = Session(bind=bind)
    for definition, version in surveys:
        if isinstance(definition, str):
            import json

            definition = json.loads(definition)
        compiled = compile_survey(SurveyDefinition.model_validate(definition), version)
        narrow.fill(session, compiled)
    session.flush()


def downgrade() -> None:
    op.drop_table('stat_row')
