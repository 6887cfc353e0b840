"""Submissions (contract §5): validate, store once (idempotently), read back, erase."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlmodel import Session, col, select

from schemas.responses import Answer, Response, ResponsePublic, SubmissionIn
from schemas.surveys import Wave
from service import bulk, table_stats
from service.answers import answer_rows
from service.database import after_commit
from service.errors import FieldProblem, Forbidden, Invalid, NotFound
from service.events import outbox
from service.ids import new_id
from service.keys import Principal
from service.pagination import decode_pk_cursor, encode_cursor
from service.permissions import Action, require
from service.stats import cells
from service.stats.cells import ANSWER_SOURCES
from service.surveys import load_compiled
from service.validation import CompiledSurvey


def to_public(response: Response) -> ResponsePublic:
    return ResponsePublic(
        id=response.id,
        survey=response.survey_id,
        site=response.site,
        wave=response.wave,
        received_at=response.received_at,
        submitted_at=response.submitted_at,
        answers=response.answers,
        language=response.language,
    )


def public_of(values: dict[str, Any]) -> ResponsePublic:
    """The public form of a response just stored from these (already checked) values,
    without building an ORM instance on the hot path."""
    return ResponsePublic.model_construct(
        id=values["id"],
        survey=values["survey_id"],
        site=values["site"],
        wave=values["wave"],
        received_at=values["received_at"],
        submitted_at=values["submitted_at"],
        answers=values["answers"],
        language=values.get("language"),
    )


def wave_is_open(wave: Wave, at: datetime) -> bool:
    return (wave.opens_at is None or wave.opens_at <= at) and (
        wave.closes_at is None or at <= wave.closes_at
    )


def check_submission(
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    data: SubmissionIn,
    received_at: datetime,
) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Every problem of one submission, with the answers as they would be stored.

    Shared by live submissions and imports, so a row of an import is held to exactly the
    rules of a live post.
    """
    problems = compiled.check_envelope(
        site=data.site, wave=data.wave, submitted_at=data.submitted_at, received_at=received_at
    )
    if data.site in compiled.site_ids and not principal.may_see_site(data.site):
        raise Forbidden(f"this key may not submit for site {data.site!r}")
    answers, answer_problems = compiled.validate_answers(data.answers)
    if data.language is not None:
        why = compiled.definition.undeclared(data.language)
        if why is not None:
            problems = [*problems, FieldProblem(("language",), why)]
    return answers, problems + answer_problems


# Driver statements, compiled once (`service.bulk`). RETURNING the id we made rather
# than relying on the order of rows: the whole batch is one multi-row statement.
_INSERT_RESPONSE = bulk.Insert(
    Response.__table__,  # type: ignore[attr-defined]
    (
        "id",
        "survey_id",
        "site",
        "wave",
        "received_at",
        "submitted_at",
        "submitted_by",
        "answers",
        "language",
    ),
    suffix="RETURNING pk, id",
    returns=True,
)
_INSERT_ANSWERS = bulk.Insert(
    Answer.__table__,  # type: ignore[attr-defined]
    ("response_pk", "survey_id", "question_id", "site", "wave", "option", "number", "text"),
)


@dataclass(frozen=True)
class Validated:
    """A submission that passed its checks, with its answers as they will be stored."""

    data: SubmissionIn
    answers: dict[str, Any]
    received_at: datetime
    submitted_by: str


def store_responses(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    items: list[tuple[SubmissionIn, dict[str, Any]]],
    received_at: datetime,
) -> list[tuple[int, dict[str, Any]]]:
    """`store_validated` for submissions of one key received at one moment (imports)."""
    return store_validated(
        session,
        compiled,
        [Validated(data, answers, received_at, principal.name) for data, answers in items],
    )


def store_validated(
    session: Session, compiled: CompiledSurvey, items: Sequence[Validated]
) -> list[tuple[int, dict[str, Any]]]:
    """Insert validated submissions of one survey and their answer rows in two multi-row
    statements, and count them in the cells with one more, recording a `response.created`
    event for each (live, batched and imported alike); returns each stored row's primary
    key and values, with their public form under "public" (built once, for the event and
    the answer)."""
    values: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "survey_id": compiled.definition.id,
            "site": item.data.site,
            "wave": item.data.wave,
            "received_at": item.received_at,
            "submitted_at": item.data.submitted_at,
            "submitted_by": item.submitted_by,
            "answers": item.answers,
            "language": item.data.language,
        }
        for item in items
    ]
    pk_of = {id_: pk for pk, id_ in _INSERT_RESPONSE.execute(session, values)}
    keys = [pk_of[value["id"]] for value in values]
    rows = [
        row
        for pk, value in zip(keys, values, strict=True)
        for row in answer_rows(
            compiled,
            response_pk=pk,
            site=value["site"],
            wave=value["wave"],
            answers=value["answers"],
        )
    ]
    _INSERT_ANSWERS.execute(session, rows)
    cells.apply(session, compiled, sign=1, response_pks=list(keys), sources=ANSWER_SOURCES)
    for value in values:
        value["public"] = public_of(value)  # no ORM instances
    outbox.response_created(session, (value["public"] for value in values))
    engine = session.get_bind().engine
    after_commit(session, lambda: table_stats.KEEPER.stored(engine, len(values)))
    return list(zip(keys, values, strict=True))


def request_hash(data: SubmissionIn) -> str:
    """The body's fingerprint for idempotency; without a language it is the fingerprint
    it had before submissions carried one, so a retry across the upgrade still matches."""
    body = data.model_dump(mode="json", exclude={"language"} if data.language is None else None)
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


def visible_response(
    session: Session,
    principal: Principal,
    *,
    survey_id: str,
    response_id: str,
    for_update: bool = False,
) -> Response:
    """A response of the survey that the key's sites may see: the one lookup, 404 for
    another survey's response, 403 for another site's. `for_update` locks its row, so
    writers to one response (coders of one answer) take turns."""
    query = select(Response).where(col(Response.id) == response_id)
    if for_update:
        query = query.with_for_update()
    response = session.exec(query).first()
    if response is None or response.survey_id != survey_id:
        raise NotFound("no such response")
    principal.require_site(response.site)
    return response


def get_response(
    session: Session, *, principal: Principal, survey_id: str, response_id: str
) -> Response:
    require(principal, Action.read_responses)
    return visible_response(session, principal, survey_id=survey_id, response_id=response_id)


def list_responses(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    sites: list[str],
    waves: list[str],
    limit: int,
    cursor: str | None,
) -> tuple[list[Response], str | None]:
    require(principal, Action.read_responses)
    compiled = load_compiled(session, survey_id=survey_id)
    if problems := compiled.unknown_filters(sites, waves):
        raise Invalid("the listing's filters are not valid", problems)
    after = decode_pk_cursor(cursor)
    query = (
        select(Response)
        .where(Response.survey_id == survey_id)
        .order_by(col(Response.pk))
        .limit(limit + 1)
    )
    visible = principal.visible_sites(sites)
    if visible is not None:
        query = query.where(col(Response.site).in_(visible))
    if waves:
        query = query.where(col(Response.wave).in_(waves))
    if after is not None:
        query = query.where(col(Response.pk) > after)
    rows = list(session.exec(query))
    next_cursor = encode_cursor(rows[limit - 1].pk) if len(rows) > limit else None
    return rows[:limit], next_cursor
