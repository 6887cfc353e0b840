"""answer lookup: the answers of given responses to given questions, by one index

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 19:00:00

Every write that keeps the statistics cells reads the answers of the responses it
writes to the questions it counts (`service.stats.cells`). With an index on
`response_pk` alone, PostgreSQL's planner combined it with the (survey, question) index
(a BitmapAnd), whose scan covers every answer the study holds to those questions: a
submission batch grew slower with the study. One index on (response_pk, question_id)
answers both conditions, and serves every lookup by response as the old one did, which
it replaces. Building it reads the whole answer table once (about a minute at a million
responses).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_answer_response_pk_question_id", "answer", ["response_pk", "question_id"]
    )
    op.drop_index("ix_answer_response_pk", table_name="answer")


def downgrade() -> None:
    op.create_index("ix_answer_response_pk", "answer", ["response_pk"])
    op.drop_index("ix_answer_response_pk_question_id", table_name="answer")
