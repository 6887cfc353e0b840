"""Statistics (contract §7): the summary cells they are read from, and their bodies.

`StatCell` holds, per survey, site and wave, how many responses gave a value to a
question, alone (`by_question` empty) and beside each value of every other
single-valued question. Statistics read a few hundred of these rows instead of
grouping a million answers; submissions, imports, erasures, codings and survey
edits keep them exact in the same transaction (see `service/stats/cells.py`).
"""

from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    text,
)
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel


class StatCell(SQLModel, table=True):
    __tablename__ = "stat_cell"
    __table_args__ = (
        PrimaryKeyConstraint(
            "survey_id", "question_id", "by_question", "by_value", "site", "wave", "value", "shard"
        ),
    )

    survey_id: str = SQLField(max_length=64)
    # '' with value '' counts responses; value '' of a multi-choice or text question
    # counts the responses that answered it; 'c:', 't:' and 's:' values of a text
    # question count effective categories, themes and coding statuses.
    question_id: str = SQLField(max_length=64)
    value: str = SQLField(max_length=80)
    by_question: str = SQLField(max_length=64)
    by_value: str = SQLField(max_length=80)
    site: str = SQLField(max_length=64)
    wave: str = SQLField(max_length=64)
    # a cell is split over a few rows, summed when read, so that concurrent writers
    # mostly lock different rows (see service/stats/cells.py)
    shard: int = SQLField(sa_column=Column(SmallInteger, nullable=False))
    n: int = SQLField(
        sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), nullable=False)
    )


Value = bool | int | str


class CountRow(BaseModel):
    value: Value
    label: str
    count: int | None = Field(description="null where suppressed (§7.5)")
    percent: float | None = Field(description="count / n x 100, half-up to one decimal")
    suppressed: bool = False


class CompositionTable(BaseModel):
    n: int | None = Field(description="responses in scope that answered")
    missing: int | None = Field(description="responses in scope that did not answer")
    rows: list[CountRow]


class LikertTable(CompositionTable):
    mean: float | None = Field(description="half-up to two decimals")
    median: float | None
    top2_percent: float | None
    bottom2_percent: float | None


class CompositionGroup(CompositionTable):
    value: Value
    label: str


class LikertGroup(LikertTable):
    value: Value
    label: str


class Composition(CompositionTable):
    question: str
    min_cell: int | None = Field(None, description="the K of §7.5 applied, null if none")
    by: str | None = None
    groups: list[CompositionGroup] | None = None


class Likert(LikertTable):
    question: str
    min_cell: int | None = None
    by: str | None = None
    groups: list[LikertGroup] | None = None


class LikertWave(LikertTable):
    question: str
    wave: str


class WaveComparison(BaseModel):
    question: str
    min_cell: int | None = None
    waves: list[LikertWave]
    mean_difference: float | None = Field(description="b - a, half-up to two decimals")
    top2_difference: float | None = Field(description="b - a, half-up to one decimal")
    u: float | None = Field(description="Mann-Whitney U of a against b (scipy's)")
    p_value: float | None = Field(description="two-sided, with tie correction")


StatFormat = Literal["json", "csv", "svg", "png", "vega"]


class CategoryStat(BaseModel):
    id: str
    label: str
    respondents: int | None = Field(description="responses whose effective set holds it")
    percent: float | None = Field(description="of n_coded")
    suppressed: bool = False


class ThemeStat(BaseModel):
    id: str
    label: str
    domain: str | None
    mentions: int | None = Field(description="sum of its categories' respondents")
    respondents: int | None = Field(description="distinct responses with any of its categories")
    percent_respondents: float | None = Field(description="of n_coded")
    suppressed: bool = False
    categories: list[CategoryStat]


class ThemeTable(BaseModel):
    n_responses: int | None
    n_answered: int | None
    n_blank: int | None
    n_coded: int | None = Field(description="responses with an effective set: the base")
    n_disputed: int | None
    n_uncoded: int | None
    themes: list[ThemeStat]


class ThemeGroup(ThemeTable):
    value: Value
    label: str


class Themes(ThemeTable):
    question: str
    min_cell: int | None = None
    by: str | None = None
    groups: list[ThemeGroup] | None = None


# --- the narrow table: one row per response (see service/stats/narrow.py) ---------------

SINGLE_SLOTS = 32  # single-valued questions (choice, likert, boolean) a survey may have there
MULTI_SLOTS = 8  # multi-choice questions, each a bitmask of up to MASK_BITS options
MASK_BITS = 62


def _narrow_columns() -> list[Column[Any]]:
    columns: list[Column[Any]] = [
        Column("survey_id", String(64), primary_key=True),
        Column("response_pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
        Column("site", SmallInteger, nullable=False),
        Column("wave", SmallInteger, nullable=False),
    ]
    columns += [Column(f"s{i}", SmallInteger, nullable=True) for i in range(SINGLE_SLOTS)]
    columns += [Column(f"m{i}", BigInteger, nullable=True) for i in range(MULTI_SLOTS)]
    columns.append(Column("t", BigInteger, nullable=True))
    # When the row last changed, in commit order (`service/stats/columns.py`): NULL until
    # its transaction commits; 0 for rows older than the order.
    columns.append(Column("seq", BigInteger, nullable=True, server_default=text("0")))
    return columns


# Per response of a survey: its site and wave, and the code of each single-valued answer
# (`s<slot>`: the value's 1-based position in the question's levels), the options of each
# multi-choice answer as a bitmask (`m<slot>`), and which text questions it answered (`t`,
# one bit per text question). NULL: no answer. WITHOUT ROWID on SQLite, so a survey's rows
# lie together in primary-key order and a statistic scans only its own survey.
stat_row = Table(
    "stat_row",
    SQLModel.metadata,
    *_narrow_columns(),
    Index("ix_stat_row_survey_id_seq", "survey_id", "seq"),
    sqlite_with_rowid=False,
)

# What the rows of `stat_row` cannot say by themselves, in the same commit order: a
# response's row gone (`kind` 'gone', an erasure) or all of a survey's rows derived afresh
# (`kind` 'rebuilt', response_pk NULL: codes may have moved). `seq` is NULL until commit.
stat_change = Table(
    "stat_change",
    SQLModel.metadata,
    Column(
        "pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("survey_id", String(64), nullable=False),
    Column("response_pk", BigInteger().with_variant(Integer, "sqlite"), nullable=True),
    Column("kind", String(16), nullable=False),
    Column("seq", BigInteger, nullable=True),
    Index("ix_stat_change_survey_id_seq", "survey_id", "seq"),
    sqlite_autoincrement=True,
)
