"""Codings of text answers against a codebook, consensus and the outcome (contract §6).

A coding is one coder's set of categories for one answer. The outcome (status and
effective set) of each coded answer is kept in its own rows, written only by
`service.coding.outcome.set_outcome`, so that every statistic reads the effective sets
with a join instead of recomputing agreement; `effective_category` spreads each effective
set into one row per category for GROUP BY. `coding_category` does the same for every
coding and consensus, so that "is this category still used?" is one indexed query.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow

MAX_CATEGORIES = 500


def _response_fk(*, primary_key: bool = False) -> Column[int]:
    return Column(
        "response_pk",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("response.pk", ondelete="CASCADE"),
        nullable=False,
        primary_key=primary_key,
    )


class CodingStatus(StrEnum):
    uncoded = "uncoded"
    single = "single"
    agreed = "agreed"
    disputed = "disputed"
    resolved = "resolved"


class Coding(SQLModel, table=True):
    __tablename__ = "coding"
    __table_args__ = (
        UniqueConstraint("response_pk", "question_id", "coder"),
        Index("ix_coding_survey_id_question_id_coder", "survey_id", "question_id", "coder"),
    )

    id: int | None = SQLField(default=None, primary_key=True)
    response_pk: int = SQLField(sa_column=_response_fk())
    survey_id: str = SQLField(max_length=64)
    question_id: str = SQLField(max_length=64)
    coder: str = SQLField(max_length=200)
    categories: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    coded_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


class Consensus(SQLModel, table=True):
    __tablename__ = "coding_consensus"
    __table_args__ = (UniqueConstraint("response_pk", "question_id"),)

    id: int | None = SQLField(default=None, primary_key=True)
    response_pk: int = SQLField(sa_column=_response_fk())
    survey_id: str = SQLField(max_length=64)
    question_id: str = SQLField(max_length=64)
    categories: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    set_by: str = SQLField(max_length=200)
    set_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


class CodingOutcome(SQLModel, table=True):
    """The status and effective set of one coded answer; no row means uncoded."""

    __tablename__ = "coding_outcome"
    __table_args__ = (
        Index(
            "ix_coding_outcome_survey_id_question_id_status", "survey_id", "question_id", "status"
        ),
    )

    response_pk: int = SQLField(sa_column=_response_fk(primary_key=True))
    question_id: str = SQLField(sa_column=Column(String(64), primary_key=True))
    survey_id: str = SQLField(max_length=64)
    site: str = SQLField(max_length=64)
    wave: str = SQLField(max_length=64)
    status: str = SQLField(max_length=16)
    effective: list[str] | None = SQLField(
        default=None, sa_column=Column(JSON(none_as_null=True), nullable=True)
    )


class EffectiveCategory(SQLModel, table=True):
    """One row per category of an effective set, for SQL aggregation of theme statistics."""

    __tablename__ = "effective_category"
    __table_args__ = (
        Index(
            "ix_effective_category_survey_id_question_id_category_id",
            "survey_id",
            "question_id",
            "category_id",
        ),
    )

    response_pk: int = SQLField(sa_column=_response_fk(primary_key=True))
    question_id: str = SQLField(sa_column=Column(String(64), primary_key=True))
    category_id: str = SQLField(sa_column=Column(String(64), primary_key=True))
    survey_id: str = SQLField(max_length=64)
    site: str = SQLField(max_length=64)
    wave: str = SQLField(max_length=64)


class CodingCategory(SQLModel, table=True):
    """One row per category held by a coding or a consensus (exactly one of the two ids),
    so a codebook edit can ask in SQL which of its removed categories are still in use."""

    __tablename__ = "coding_category"
    __table_args__ = (
        Index(
            "ix_coding_category_survey_id_question_id_category_id",
            "survey_id",
            "question_id",
            "category_id",
        ),
    )

    id: int | None = SQLField(default=None, primary_key=True)
    coding_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer, ForeignKey("coding.id", ondelete="CASCADE"), nullable=True, index=True
        ),
    )
    consensus_id: int | None = SQLField(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("coding_consensus.id", ondelete="CASCADE"),
            nullable=True,
            index=True,
        ),
    )
    survey_id: str = SQLField(max_length=64)
    question_id: str = SQLField(max_length=64)
    category_id: str = SQLField(max_length=64)


class CodingIn(StrictModel):
    """A set of category ids; an empty list is a valid coding ("codable, no category")."""

    categories: Annotated[list[Slug], Field(max_length=MAX_CATEGORIES)]

    @field_validator("categories")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("categories must be distinct")
        return value


class CodingPublic(BaseModel):
    coder: str
    categories: list[str]
    coded_at: datetime


class CodingsPublic(BaseModel):
    codings: list[CodingPublic]
    consensus: list[str] | None
    effective: list[str] | None
    status: CodingStatus


class QueueItem(BaseModel):
    """An answer waiting for the calling coder."""

    response_id: str
    site: str
    wave: str
    text: str
