"""Exports of responses (contract §10): what an export holds, and writing it.

A request is checked and planned in the request's own transaction (`plan_export`: the
key's role and sites, the filters, the columns from the survey and its codebooks). CSV is
then streamed from a read transaction of its own (`csv_stream`), since the response body
outlives the request's session; the other formats are written to a temporary file in the
request's transaction (`write_file`) and streamed from disk.
"""

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from schemas.codebooks import CodebookPublic
from schemas.exports import ExportDictionary, ExportFormat
from schemas.texts import resolve
from service.database import Database
from service.exports import tabular
from service.exports.columns import Column, coded_questions, columns
from service.exports.rows import (
    ExportScope,
    extent,
    iter_rows,
    resolve_scope,
    survey_codebooks,
)
from service.keys import Principal
from service.permissions import Action, require
from service.validation import CompiledSurvey

MEDIA_TYPES: dict[str, str] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "sav": "application/x-spss-sav",
    "dta": "application/x-stata-dta",
}


@dataclass(frozen=True)
class ExportPlan:
    scope: ExportScope
    title: str
    columns: list[Column]
    codebooks: list[CodebookPublic]

    @property
    def coded(self) -> list[str]:
        return coded_questions(self.columns)


def _columns(
    session: Session, compiled: CompiledSurvey, lang: str | None
) -> tuple[list[Column], list[CodebookPublic]]:
    books = survey_codebooks(session, compiled, lang)
    ordered = [books[q.id] for q in compiled.definition.questions if q.id in books]
    return columns(compiled.definition, books, lang=lang), ordered


def plan_export(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    sites: Sequence[str] = (),
    waves: Sequence[str] = (),
    lang: str | None = None,
) -> ExportPlan:
    scope = resolve_scope(compiled, principal=principal, sites=sites, waves=waves)
    cols, books = _columns(session, compiled, lang)
    return ExportPlan(
        scope=scope, title=resolve(compiled.definition.title, lang), columns=cols, codebooks=books
    )


def csv_stream(database: Database, plan: ExportPlan) -> Iterator[bytes]:
    """The export as CSV, read in one read transaction as the lines are sent."""
    with database.session(write=False) as session:
        rows = iter_rows(session, plan.scope, coded=plan.coded)
        yield from tabular.csv_lines(plan.columns, rows)


def write_file(session: Session, plan: ExportPlan, fmt: ExportFormat, path: Path) -> None:
    """Write the export in `fmt` (xlsx, sav, dta or csv) to `path`."""
    rows = iter_rows(session, plan.scope, coded=plan.coded)
    if fmt == "xlsx":
        tabular.write_xlsx(path, plan.columns, rows, plan.codebooks)
    elif fmt == "sav":
        _, last = extent(session, plan.scope)
        tabular.write_sav(
            path,
            plan.columns,
            lambda: iter_rows(session, plan.scope, coded=plan.coded, until=last),
            title=plan.title,
        )
    elif fmt == "dta":
        count, last = extent(session, plan.scope)
        tabular.write_dta(
            path,
            plan.columns,
            lambda: iter_rows(session, plan.scope, coded=plan.coded, until=last),
            count=count,
            title=plan.title,
        )
    else:
        with path.open("wb") as out:
            for chunk in tabular.csv_lines(plan.columns, rows):
                out.write(chunk)


def dictionary(
    session: Session, compiled: CompiledSurvey, *, principal: Principal, lang: str | None = None
) -> ExportDictionary:
    """Every column of the survey's export, with its names, label, type and value labels."""
    require(principal, Action.export_responses)
    cols, _ = _columns(session, compiled, lang)
    return ExportDictionary(survey=compiled.definition.id, columns=[c.public() for c in cols])


def dictionary_csv(body: ExportDictionary) -> bytes:
    """The dictionary as CSV: one line per column, its value labels as `code=value: label`
    joined by `; `."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["name", "sav_name", "dta_name", "label", "type", "question", "values"])
    for c in body.columns:
        values = "; ".join(f"{v.code}={tabular.plain(v.value)}: {v.label}" for v in c.values)
        writer.writerow([c.name, c.sav_name, c.dta_name, c.label, c.type, c.question or "", values])
    return buffer.getvalue().encode()
