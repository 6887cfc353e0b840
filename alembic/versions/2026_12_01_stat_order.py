"""stat order: a commit-ordered sequence on the narrow rows, and their change log

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:00:00

`stat_row.seq` orders the rows by the commit that last wrote them, and `stat_change` holds
erasures and rebuilds in the same order, so that each process's in-memory copy of the
rows (`service.stats.columns`) can catch up exactly. Rows already stored get seq 0 (the
column's default: no rewrite of the table); a copy loads them whole anyway.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "stat_row", sa.Column("seq", sa.BigInteger(), nullable=True, server_default=sa.text("0"))
    )
    op.create_index("ix_stat_row_survey_id_seq", "stat_row", ["survey_id", "seq"])
    op.create_table(
        "stat_change",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("survey_id", sa.String(length=64), nullable=False),
        sa.Column(
            "response_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_stat_change")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_stat_change_survey_id_seq", "stat_change", ["survey_id", "seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE stat_seq AS BIGINT")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE stat_seq")
    op.drop_index("ix_stat_change_survey_id_seq", table_name="stat_change")
    op.drop_table("stat_change")
    op.drop_index("ix_stat_row_survey_id_seq", table_name="stat_row")
    with op.batch_alter_table("stat_row") as batch:
        batch.drop_column("seq")
