"""Survey responses (contract §5).

A response is stored twice over on purpose: `answers` as JSON to hand back exactly what
was accepted, and one `answer` row per answered value so that SQL can aggregate
(statistics over a million responses are GROUP BY queries, not Python loops).
"""

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Field
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
)
from sqlalchemy import text as sql_text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import StrictModel, UTCDateTime, utcnow


class Response(SQLModel, table=True):
    __tablename__ = "response"
    __table_args__ = (Index("ix_response_survey_id_pk", "survey_id", "pk"),)

    pk: int | None = SQLField(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    id: str = SQLField(max_length=36, unique=True)
    survey_id: str = SQLField(foreign_key="survey.id", max_length=64)
    site: str = SQLField(max_length=64)
    wave: str = SQLField(max_length=64)
    received_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)
    submitted_by: str = SQLField(max_length=200)
    answers: dict[str, Any] = SQLField(sa_column=Column(JSON, nullable=False))
    language: str | None = SQLField(default=None, max_length=64)  # migration 0008


class Answer(SQLModel, table=True):
    """One answered value: `option` for choice, multi-choice and boolean ('true'/'false'),
    `number` for likert and number, `text` for text. Survey, site and wave are copied
    from the response so a distribution is a single-table GROUP BY."""

    __tablename__ = "answer"
    __table_args__ = (
        Index("ix_answer_survey_id_question_id_option", "survey_id", "question_id", "option"),
        Index("ix_answer_survey_id_question_id_number", "survey_id", "question_id", "number"),
        # A response's answers, and its answers to given questions (the cells' upkeep).
        Index("ix_answer_response_pk_question_id", "response_pk", "question_id"),
        # The coding queue in answer order, and its length, over text answers only.
        Index(
            "ix_answer_text_queue",
            "survey_id",
            "question_id",
            "response_pk",
            sqlite_where=sql_text("text IS NOT NULL"),
            postgresql_where=sql_text("text IS NOT NULL"),
        ),
    )

    id: int | None = SQLField(
        default=None,
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    )
    response_pk: int = SQLField(
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"),
            ForeignKey("response.pk", ondelete="CASCADE"),
            nullable=False,
        )
    )
    survey_id: str = SQLField(max_length=64)
    question_id: str = SQLField(max_length=64)
    site: str = SQLField(max_length=64)
    wave: str = SQLField(max_length=64)
    option: str | None = SQLField(default=None, max_length=64)
    number: float | None = SQLField(default=None, sa_column=Column(Float(precision=53)))
    text: str | None = SQLField(default=None, sa_column=Column(Text))


class IdempotencyRecord(SQLModel, table=True):
    """Remembers which response an `Idempotency-Key` produced, per API key.

    The unique constraint is what makes concurrent duplicates store one response: the
    second insert fails, and the loser reads the winner's record.
    """

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: int | None = SQLField(default=None, primary_key=True)
    api_key_id: int = SQLField(foreign_key="api_key.id")
    key: str = SQLField(max_length=200)
    request_hash: str = SQLField(max_length=64)
    response_pk: int | None = SQLField(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"),
            ForeignKey("response.pk", ondelete="SET NULL"),
            nullable=True,
        ),
    )
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


def _iso_text(value: Any) -> Any:
    """Timestamps travel as ISO 8601 text; a bare number is too easily seconds or millis."""
    if value is not None and not isinstance(value, str | datetime):
        raise ValueError("must be an ISO 8601 timestamp with a time zone, as text")
    return value


IsoTimestamp = Annotated[AwareDatetime, BeforeValidator(_iso_text)]


class SubmissionIn(StrictModel):
    """The envelope of a submission; `answers` is checked against the survey's own model."""

    site: str
    wave: str
    answers: dict[str, Any]
    submitted_at: IsoTimestamp | None = None
    language: str | None = Field(
        default=None, description="The language it was answered in: one the survey declares."
    )


class ResponsePublic(BaseModel):
    id: str
    survey: str
    site: str
    wave: str
    received_at: datetime
    submitted_at: datetime | None
    answers: dict[str, Any]
    language: str | None = None


class ImportResult(BaseModel):
    imported: int
