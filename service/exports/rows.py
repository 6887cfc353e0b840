"""Which responses an export holds, and reading them in batches.

An export may hold every response of a study, so rows are read by primary key in
batches (`BATCH` at a time, with the coding outcomes of just those responses) and
handed on one by one: what is held in memory is one batch, whatever the study's size.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

from schemas.codebooks import Codebook, CodebookPublic
from schemas.codings import CodingOutcome
from schemas.responses import Response
from service.coding.codebooks import codebook_of
from service.errors import Invalid
from service.exports.columns import Outcome, Row
from service.keys import Principal
from service.permissions import Action, require
from service.validation import CompiledSurvey

_RESPONSES = Response.__table__  # type: ignore[attr-defined]
BATCH = 2000


@dataclass(frozen=True)
class ExportScope:
    survey_id: str
    sites: tuple[str, ...] | None  # None: every site
    waves: tuple[str, ...] | None  # None: every wave


def resolve_scope(
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    sites: Sequence[str] = (),
    waves: Sequence[str] = (),
) -> ExportScope:
    """Check the filters (unknown site or wave: 422; a site outside the key's: 403); a
    site-bound key exports its own sites only."""
    require(principal, Action.export_responses)
    problems = compiled.unknown_filters(sites, waves)
    if problems:
        raise Invalid("the export request is not valid", problems)
    visible = principal.visible_sites(dict.fromkeys(sites))
    return ExportScope(
        survey_id=compiled.definition.id,
        sites=tuple(visible) if visible is not None else None,
        waves=tuple(dict.fromkeys(waves)) or None,
    )


def survey_codebooks(
    session: Session, compiled: CompiledSurvey, lang: str | None = None
) -> dict[str, CodebookPublic]:
    """The codebooks of the survey's text questions, by question id."""
    survey_id = compiled.definition.id
    stored = session.execute(
        select(col(Codebook.question_id)).where(col(Codebook.survey_id) == survey_id)
    ).scalars()
    text_questions = {q.id for q in compiled.definition.questions if q.type == "text"}
    return {
        qid: codebook_of(session, survey_id=survey_id, question_id=qid, lang=lang)
        for qid in stored
        if qid in text_questions
    }


def _where(query: Any, scope: ExportScope) -> Any:
    query = query.where(col(Response.survey_id) == scope.survey_id)
    if scope.sites is not None:
        query = query.where(col(Response.site).in_(scope.sites))
    if scope.waves is not None:
        query = query.where(col(Response.wave).in_(scope.waves))
    return query


def extent(session: Session, scope: ExportScope) -> tuple[int, int]:
    """How many responses are in scope, and the last one's primary key (-1 for none): an
    export that must know its length reads exactly these (`iter_rows(until=...)`), even
    if more arrive meanwhile."""
    count, last = session.execute(
        _where(select(func.count(), func.max(col(Response.pk))), scope)
    ).one()
    return int(count), -1 if last is None else int(last)


def iter_rows(
    session: Session,
    scope: ExportScope,
    *,
    coded: Sequence[str],
    batch: int = BATCH,
    until: int | None = None,
) -> Iterator[Row]:
    """The responses in scope, oldest first, with their coding outcomes (up to the primary
    key `until`, if given)."""
    table = _RESPONSES.c  # Core columns on the session's connection: no ORM row loading
    query = select(
        table.pk, table.id, table.site, table.wave, table.language, table.submitted_at,
        table.received_at, table.answers,
    )  # fmt: skip
    query = _where(query, scope)
    connection = session.connection()
    if until is not None:
        query = query.where(col(Response.pk) <= until)
    after = -1
    while True:
        found = connection.execute(
            query.where(table.pk > after).order_by(table.pk).limit(batch)
        ).all()
        if not found:
            return
        outcomes: dict[int, dict[str, Outcome]] = {}
        if coded:
            for pk, question_id, status, effective in connection.execute(
                select(
                    col(CodingOutcome.response_pk),
                    col(CodingOutcome.question_id),
                    col(CodingOutcome.status),
                    col(CodingOutcome.effective),
                ).where(
                    col(CodingOutcome.response_pk).between(found[0][0], found[-1][0]),
                    col(CodingOutcome.survey_id) == scope.survey_id,
                    col(CodingOutcome.question_id).in_(coded),
                )
            ):
                outcomes.setdefault(pk, {})[question_id] = Outcome(
                    status, None if effective is None else frozenset(effective)
                )
        for pk, id_, site, wave, language, submitted_at, received_at, answers in found:
            yield Row(
                id_, site, wave, language, submitted_at, received_at, answers, outcomes.get(pk, {})
            )
        after = found[-1][0]
