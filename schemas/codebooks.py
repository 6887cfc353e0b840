"""Codebooks of themes and categories for coding a text question (contract §6).

Themes and categories are rows, not a JSON blob, so that theme statistics can join
codings to categories in SQL; every accepted change is also kept whole as a revision.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, Field, model_validator
from sqlalchemy import JSON, Column, ForeignKey, Integer, Text, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow
from schemas.texts import Description, Label

Keyword = Annotated[str, Field(min_length=1, max_length=100)]


class Domain(StrEnum):
    knowing = "knowing"
    being = "being"
    doing = "doing"


class Origin(StrEnum):
    deductive = "deductive"
    inductive = "inductive"


class CategoryIn(StrictModel):
    id: Slug
    label: Label
    description: Description | None = None
    origin: Origin = Origin.deductive
    keywords: Annotated[list[Keyword], Field(max_length=100)] = Field(default_factory=list)


class ThemeIn(StrictModel):
    id: Slug
    label: Label
    domain: Domain | None = None
    categories: Annotated[list[CategoryIn], Field(max_length=500)]


class CodebookIn(StrictModel):
    question: Slug | None = None
    themes: Annotated[list[ThemeIn], Field(max_length=200)]

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        themes = [t.id for t in self.themes]
        if len(set(themes)) != len(themes):
            raise ValueError("theme ids must be unique within the codebook")
        categories = [c.id for t in self.themes for c in t.categories]
        if len(set(categories)) != len(categories):
            raise ValueError("category ids must be unique within the codebook")
        return self


class CodebookPublic(BaseModel):
    survey: str
    question: str
    version: int
    updated_at: datetime
    updated_by: str
    themes: list[ThemeIn]


class CodebookRevisionPublic(BaseModel):
    version: int
    changed_at: datetime
    changed_by: str
    themes: list[ThemeIn]


class Codebook(SQLModel, table=True):
    __tablename__ = "codebook"
    __table_args__ = (UniqueConstraint("survey_id", "question_id"),)

    id: int | None = SQLField(default=None, primary_key=True)
    survey_id: str = SQLField(foreign_key="survey.id", max_length=64)
    question_id: str = SQLField(max_length=64)
    version: int = 1
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: str = SQLField(max_length=200)


class CodebookTheme(SQLModel, table=True):
    __tablename__ = "codebook_theme"
    __table_args__ = (UniqueConstraint("codebook_id", "theme_id"),)

    id: int | None = SQLField(default=None, primary_key=True)
    codebook_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("codebook.id", ondelete="CASCADE"), nullable=False)
    )
    theme_id: str = SQLField(max_length=64)
    label: str = SQLField(max_length=500)  # in the default language
    domain: str | None = SQLField(default=None, max_length=16)
    position: int
    # {"label": {lang: text}} where the label is given per language (migration 0008)
    texts: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))


class CodebookCategory(SQLModel, table=True):
    __tablename__ = "codebook_category"
    __table_args__ = (UniqueConstraint("codebook_id", "category_id"),)

    id: int | None = SQLField(default=None, primary_key=True)
    codebook_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("codebook.id", ondelete="CASCADE"), nullable=False)
    )
    theme_id: str = SQLField(max_length=64)
    category_id: str = SQLField(max_length=64)
    label: str = SQLField(max_length=500)
    description: str | None = SQLField(default=None, sa_column=Column(Text))
    origin: str = SQLField(max_length=16)
    keywords: list[str] = SQLField(default_factory=list, sa_column=Column(JSON, nullable=False))
    position: int
    # {"label": {lang: text}, "description": {...}}: the texts given per language (0008)
    texts: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))


class CodebookRevision(SQLModel, table=True):
    """Every accepted version of a codebook, whole, with who changed it and when."""

    __tablename__ = "codebook_revision"
    __table_args__ = (UniqueConstraint("codebook_id", "version"),)

    id: int | None = SQLField(default=None, primary_key=True)
    codebook_id: int = SQLField(
        sa_column=Column(Integer, ForeignKey("codebook.id", ondelete="CASCADE"), nullable=False)
    )
    version: int
    themes: list[dict[str, Any]] = SQLField(sa_column=Column(JSON, nullable=False))
    changed_by: str = SQLField(max_length=200)
    changed_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
