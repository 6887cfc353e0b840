"""The column layout of an export (contract §10), one `Column` per output column.

`columns()` is a pure function of a survey definition and its codebooks: the envelope
columns, then each question in definition order (a multi-choice question as one 0/1
column per option, a coded text question followed by its status and a 0/1 column per
category and per theme, from the effective set). Each column knows how to read its
value from a response (`Row`) and, for SPSS and Stata, which integer code and value
labels stand for it; every writer and the dictionary read the same list.

Every label shown to a person is in the request's language (contract §4 "Languages"):
a survey's texts through `schemas.texts.resolve`, hearme's own words through `phrase`.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.codebooks import CodebookPublic
from schemas.exports import ColumnType, DictionaryColumn, ValueLabel
from schemas.surveys import (
    BooleanQuestion,
    ChoiceQuestion,
    LikertQuestion,
    MultiChoiceQuestion,
    NumberQuestion,
    Question,
    SurveyDefinition,
    TextQuestion,
)
from schemas.texts import phrase, resolve
from service.exports.names import dta_names, sav_names

Cell = str | int | float | bool | datetime | None


@dataclass(slots=True)
class Outcome:
    status: str
    effective: frozenset[str] | None


@dataclass(slots=True)
class Row:
    """One response as an export reads it (slots, not frozen: a large export makes one per
    response, and a frozen dataclass is several times slower to build)."""

    id: str
    site: str
    wave: str
    language: str | None
    submitted_at: datetime | None
    received_at: datetime
    answers: Mapping[str, Any]
    outcomes: Mapping[str, Outcome] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Block:
    """Consecutive columns read from a response at once (a multi-choice question's options;
    a coded question's status, categories and themes): one look-up per response instead
    of one per column, which is most of an export's time."""

    read: Callable[[Row], Sequence[Cell]]
    width: int


@dataclass(frozen=True)
class Column:
    name: str
    label: str
    type: ColumnType
    question: str | None
    value: Callable[[Row], Cell]
    values: tuple[ValueLabel, ...] = ()
    sav_name: str = ""
    dta_name: str = ""
    block: Block | None = None  # the block this column is read with, if any

    @property
    def codes(self) -> dict[Any, int]:
        """Value -> integer code, for the columns that have value labels."""
        return {v.value: v.code for v in self.values}

    def public(self) -> DictionaryColumn:
        return DictionaryColumn(
            name=self.name,
            sav_name=self.sav_name,
            dta_name=self.dta_name,
            label=self.label,
            type=self.type,
            question=self.question,
            values=list(self.values),
        )


ENVELOPE: tuple[tuple[str, str, ColumnType, Callable[[Row], Cell]], ...] = (
    ("response_id", "Response id", "string", lambda r: r.id),
    ("site", "Site", "string", lambda r: r.site),
    ("wave", "Wave", "string", lambda r: r.wave),
    ("language", "Language of the response", "string", lambda r: r.language),
    ("submitted_at", "Submitted at (UTC)", "datetime", lambda r: r.submitted_at),
    ("received_at", "Received at (UTC)", "datetime", lambda r: r.received_at),
)


def _answer(qid: str) -> Callable[[Row], Cell]:
    def read(row: Row) -> Cell:
        value = row.answers.get(qid)
        return value if isinstance(value, str | int | float | bool) else None

    return read


def _chosen(qid: str, option: str) -> Callable[[Row], Cell]:
    def read(row: Row) -> Cell:
        chosen = row.answers.get(qid)
        if not isinstance(chosen, list) or not chosen:
            return None
        return 1 if option in chosen else 0

    return read


def _status(qid: str) -> Callable[[Row], Cell]:
    def read(row: Row) -> Cell:
        if not isinstance(row.answers.get(qid), str):
            return None
        outcome = row.outcomes.get(qid)
        return "uncoded" if outcome is None else outcome.status

    return read


def _holds(qid: str, categories: frozenset[str]) -> Callable[[Row], Cell]:
    def read(row: Row) -> Cell:
        outcome = row.outcomes.get(qid)
        if outcome is None or outcome.effective is None:
            return None
        return 1 if outcome.effective & categories else 0

    return read


def _chosen_block(qid: str, options: Sequence[str]) -> Callable[[Row], Sequence[Cell]]:
    empty: tuple[Cell, ...] = (None,) * len(options)

    def read(row: Row) -> Sequence[Cell]:
        chosen = row.answers.get(qid)
        if not isinstance(chosen, list) or not chosen:
            return empty
        return [1 if o in chosen else 0 for o in options]

    return read


def _coded_block(
    qid: str, categories: Sequence[str], themes: Sequence[frozenset[str]]
) -> Callable[[Row], Sequence[Cell]]:
    """Status, then a 0/1 per category and per theme from the effective set."""
    width = len(categories) + len(themes)
    blank: tuple[Cell, ...] = (None,) * (1 + width)
    nothing: tuple[Cell, ...] = (None,) * width

    def read(row: Row) -> Sequence[Cell]:
        if not isinstance(row.answers.get(qid), str):
            return blank
        outcome = row.outcomes.get(qid)
        if outcome is None:
            return ("uncoded", *nothing)
        effective = outcome.effective
        if effective is None:
            return (outcome.status, *nothing)
        return (
            outcome.status,
            *(1 if c in effective else 0 for c in categories),
            *(0 if effective.isdisjoint(m) else 1 for m in themes),
        )

    return read


def _question_columns(
    question: Question, codebook: CodebookPublic | None, lang: str | None
) -> list[Column]:
    qid, label = question.id, resolve(question.text, lang)
    match question:
        case MultiChoiceQuestion():
            options = [o.value for o in question.options]
            block = Block(_chosen_block(qid, options), len(options))
            return [
                Column(
                    f"{qid}__{o.value}",
                    f"{label}: {resolve(o.label, lang)}",
                    "indicator",
                    qid,
                    _chosen(qid, o.value),
                    block=block,
                )
                for o in question.options
            ]
        case ChoiceQuestion():
            values = tuple(
                ValueLabel(code=i, value=o.value, label=resolve(o.label, lang))
                for i, o in enumerate(question.options, start=1)
            )
            return [Column(qid, label, "choice", qid, _answer(qid), values)]
        case LikertQuestion():
            values = tuple(
                ValueLabel(code=p.value, value=p.value, label=resolve(p.label, lang))
                for p in question.scale
            )
            return [Column(qid, label, "likert", qid, _answer(qid), values)]
        case NumberQuestion():
            kind: ColumnType = "integer" if question.integer else "number"
            return [Column(qid, label, kind, qid, _answer(qid))]
        case BooleanQuestion():
            values = (
                ValueLabel(code=1, value=True, label=phrase("Yes", lang)),
                ValueLabel(code=0, value=False, label=phrase("No", lang)),
            )
            return [Column(qid, label, "boolean", qid, _answer(qid), values)]
        case TextQuestion():
            columns = [Column(qid, label, "text", qid, _answer(qid))]
            if codebook is not None:
                categories = [c for t in codebook.themes for c in t.categories]
                themes = [(t, frozenset(c.id for c in t.categories)) for t in codebook.themes]
                block = Block(
                    _coded_block(qid, [c.id for c in categories], [m for _, m in themes]),
                    1 + len(categories) + len(themes),
                )
                columns.append(
                    Column(
                        f"{qid}__status",
                        f"{label}: coding status",
                        "status",
                        qid,
                        _status(qid),
                        block=block,
                    )
                )
                columns += [
                    Column(
                        f"{qid}__c__{c.id}",
                        f"{label}: {resolve(c.label, lang)}",
                        "indicator",
                        qid,
                        _holds(qid, frozenset({c.id})),
                        block=block,
                    )
                    for c in categories
                ]
                columns += [
                    Column(
                        f"{qid}__t__{t.id}",
                        f"{label}: {resolve(t.label, lang)}",
                        "indicator",
                        qid,
                        _holds(qid, members),
                        block=block,
                    )
                    for t, members in themes
                ]
            return columns
    raise AssertionError(f"unhandled question type {question.type}")


def columns(
    definition: SurveyDefinition,
    codebooks: Mapping[str, CodebookPublic],
    *,
    lang: str | None = None,
) -> list[Column]:
    """Every column of the survey's export, in order, with its SPSS and Stata names."""
    found = [Column(name, label, kind, None, read) for name, label, kind, read in ENVELOPE]
    for question in definition.questions:
        found += _question_columns(question, codebooks.get(question.id), lang)
    names = [c.name for c in found]
    return [
        Column(**{**c.__dict__, "sav_name": s, "dta_name": d})
        for c, s, d in zip(found, sav_names(names), dta_names(names), strict=True)
    ]


def coded_questions(cols: Sequence[Column]) -> list[str]:
    """The text questions whose coding the export carries."""
    return list(dict.fromkeys(c.question for c in cols if c.type == "status" and c.question))
