"""Releases (contract §7.6): sets of statistics tables frozen at publication.

A release row keeps what readers are served (`tables`: each table's request and its
suppressed §7.1-7.3 body, exactly as published) and, apart from it, what the disclosure
audit of later releases needs to know about this one (`audit_state`: which response
stood in which cross-classification at publication, as categorical codes; never text,
never served). `scope_sites` is the union of the tables' `site` lists, or null where a
table covers every site: a reader bound to sites sees the release only if it is not
null and lies within its sites.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import JSON, Column, Integer, LargeBinary, UniqueConstraint
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow

MAX_TABLES = 50
TableKind = Literal["composition", "likert", "themes"]
FilterValue = bool | int | str


class Release(SQLModel, table=True):
    __tablename__ = "release"
    __table_args__ = (UniqueConstraint("survey_id", "id"),)

    pk: int | None = SQLField(default=None, sa_column=Column(Integer, primary_key=True))
    survey_id: str = SQLField(foreign_key="survey.id", max_length=64)
    id: str = SQLField(max_length=64)
    title: str = SQLField(max_length=500)
    published_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    published_by: str = SQLField(max_length=200)
    min_cell: int
    n_responses: int
    tables: list[dict[str, Any]] = SQLField(sa_column=Column(JSON, nullable=False))
    scope_sites: list[str] | None = SQLField(default=None, sa_column=Column(JSON))
    withdrawn_at: datetime | None = SQLField(default=None, sa_type=UTCDateTime)
    audit_state: bytes = SQLField(sa_column=Column(LargeBinary, nullable=False))
    # {lang: {table id: labels}} of a survey with languages, taken at publication, so that
    # a release read in another language relabels its frozen figures (migration 0008)
    labels: dict[str, Any] | None = SQLField(default=None, sa_column=Column(JSON, nullable=True))

    def visible_to_sites(self, sites: frozenset[str] | None) -> bool:
        """A key bound to sites sees the releases whose every table is limited to them
        (contract §7.6): the one rule, for the releases and for their events."""
        if sites is None:
            return True
        return self.scope_sites is not None and set(self.scope_sites) <= sites


class ReleaseTableIn(StrictModel):
    id: Slug
    kind: TableKind
    question: Slug
    by: Slug | None = None
    site: Annotated[list[str], Field(max_length=200)] | None = None
    wave: Annotated[list[str], Field(max_length=200)] | None = None
    q: dict[str, Annotated[list[FilterValue], Field(min_length=1, max_length=200)]] | None = None


class ReleaseIn(StrictModel):
    id: Slug
    title: Annotated[str, Field(min_length=1, max_length=500)]
    min_cell: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    tables: Annotated[list[ReleaseTableIn], Field(min_length=1, max_length=MAX_TABLES)]


class ReleaseSummary(BaseModel):
    id: str
    title: str
    published_at: datetime
    n_responses: int


class AuditSummary(BaseModel):
    """What the disclosure audit did, for the publisher (not part of the stored release)."""

    variables: int = Field(description="cross-classification atoms in the linear programs")
    constraints: int = Field(description="distinct published equations")
    targets: int = Field(description="suppressed non-zero cells whose range was audited")
    secondary: int = Field(description="cells suppressed by the audit beyond §7.5's primary")
    solves: int = Field(description="linear programs solved")
    withheld_tables: list[str] = Field(description="tables published with every cell null")
    seconds: float


class ReleasePublic(BaseModel):
    id: str
    title: str
    published_at: datetime
    min_cell: int
    n_responses: int
    tables: list[dict[str, Any]] = Field(
        description="each: id, kind, question, by, site, wave, q and the §7.1-7.3 body"
    )
    audit: AuditSummary | None = Field(None, description="only in the answer to publication")


ReleaseFormat = Literal["json", "csv", "html"]  # a release whole
ReleaseTableFormat = Literal["json", "csv", "svg", "png", "vega"]  # one of its tables
