"""Survey definitions: create, change (never so as to invalidate stored responses), read."""

from sqlalchemy import bindparam
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.events import EventType
from schemas.responses import Response
from schemas.surveys import Survey, SurveyDefinition, SurveyPublic
from schemas.texts import resolve
from service.answers import rewrite_answer_rows
from service.errors import Conflict, NotFound
from service.events import outbox
from service.keys import Principal
from service.pagination import decode_cursor, encode_cursor
from service.permissions import Action, require
from service.stats import cells, narrow
from service.validation import CompiledCache, CompiledSurvey, compile_survey

_compiled = CompiledCache()


def to_public(survey: Survey) -> SurveyPublic:
    return SurveyPublic.model_validate(
        {
            **survey.definition,
            "version": survey.version,
            "created_at": survey.created_at,
            "updated_at": survey.updated_at,
        }
    )


def create_survey(session: Session, *, principal: Principal, data: SurveyDefinition) -> Survey:
    require(principal, Action.manage_surveys)
    if session.get(Survey, data.id) is not None:
        raise Conflict(f"survey {data.id!r} already exists")
    compile_survey(data, 1)  # a definition that cannot be compiled is a 422, never stored
    survey = Survey(id=data.id, title=resolve(data.title), definition=data.model_dump(mode="json"))
    session.add(survey)
    session.flush()
    outbox.emit(session, type=EventType.survey_created, survey=data.id, data={"id": data.id})
    return survey


def replace_survey(
    session: Session, *, principal: Principal, survey_id: str, data: SurveyDefinition
) -> Survey:
    """Replace a definition. Refused (409) if a stored response would no longer be valid."""
    require(principal, Action.manage_surveys)
    if data.id != survey_id:
        raise Conflict("a survey's id cannot change")
    survey = get_survey_row(session, survey_id=survey_id, for_update=True)
    before = load_compiled(session, survey_id=survey_id)
    compiled = compile_survey(data, survey.version + 1)
    _check_stored_responses(session, survey_id=survey_id, compiled=compiled)
    _recount_if_moved(session, before=before, after=compiled)
    survey.title = resolve(data.title)
    survey.definition = data.model_dump(mode="json")
    survey.version += 1
    survey.updated_at = utcnow()
    session.add(survey)
    session.flush()
    outbox.emit(session, type=EventType.survey_changed, survey=survey_id, data={"id": survey_id})
    return survey


def _recount_if_moved(session: Session, *, before: CompiledSurvey, after: CompiledSurvey) -> None:
    """A question that changed type stores its answers in other columns and counts in
    other cells: derive both again, so statistics follow the definition in force."""
    if cells.signature(before) == cells.signature(after):
        narrow.follow(session, before=before, after=after)  # codes moved: rows afresh
        return
    retyped = [
        qid
        for qid, question in after.questions.items()
        if qid in before.questions and before.questions[qid].type != question.type
    ]
    if retyped:
        rewrite_answer_rows(session, after, question_ids=retyped)
    cells.rebuild(session, after)


def _check_stored_responses(session: Session, *, survey_id: str, compiled: CompiledSurvey) -> None:
    waves = [w.id for w in compiled.definition.waves]
    orphaned = session.exec(
        select(Response.id)
        .where(Response.survey_id == survey_id)
        .where(~col(Response.site).in_(compiled.site_ids) | ~col(Response.wave).in_(waves))
        .limit(1)
    ).first()
    if orphaned is not None:
        raise Conflict(f"response {orphaned} would refer to a removed site or wave")
    spoken = select(Response.id, Response.language).where(
        Response.survey_id == survey_id, col(Response.language).is_not(None)
    )
    if compiled.definition.languages:
        spoken = spoken.where(~col(Response.language).in_(compiled.definition.languages))
    untold = session.exec(spoken.limit(1)).first()
    if untold is not None:
        raise Conflict(
            f"response {untold[0]} is in {untold[1]!r}, which the survey would not declare"
        )
    rows = session.exec(
        select(Response.id, Response.answers)
        .where(Response.survey_id == survey_id)
        .execution_options(yield_per=1000)
    )
    for response_id, answers in rows:
        _, problems = compiled.validate_answers(dict(answers))
        if problems:
            where = ".".join(str(p) for p in problems[0].loc)
            raise Conflict(
                f"response {response_id} would become invalid at {where}: {problems[0].msg}"
            )


def get_survey_row(session: Session, *, survey_id: str, for_update: bool = False) -> Survey:
    query = select(Survey).where(Survey.id == survey_id)
    if for_update:
        query = query.with_for_update()
    survey = session.exec(query).first()
    if survey is None:
        raise NotFound(f"no survey {survey_id!r}")
    return survey


def get_survey(session: Session, *, principal: Principal, survey_id: str) -> Survey:
    require(principal, Action.read_surveys)
    return get_survey_row(session, survey_id=survey_id)


def list_surveys(
    session: Session, *, principal: Principal, limit: int, cursor: str | None
) -> tuple[list[Survey], str | None]:
    require(principal, Action.read_surveys)
    after = decode_cursor(cursor)
    query = select(Survey).order_by(col(Survey.id)).limit(limit + 1)
    if after is not None:
        query = query.where(col(Survey.id) > str(after))
    rows = list(session.exec(query))
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


# Built once (the hot path of every submission): see load_compiled.
_VERSION = select(Survey.version, Survey.created_at).where(col(Survey.id) == bindparam("survey_id"))
_VERSION_FOR_WRITE = _VERSION.with_for_update(read=True, key_share=True)


def load_compiled(session: Session, *, survey_id: str, for_write: bool = False) -> CompiledSurvey:
    """The compiled survey, from this process's cache when its version is current.

    Only the version is read on the hot path; the definition is fetched and compiled
    once per version and process. `for_write` takes a key-share lock on PostgreSQL, so a
    definition change (which locks the row for update) waits for submissions validated
    against the old version, and later submissions see the new one. SQLite writers are
    serialised already.
    """
    query = _VERSION_FOR_WRITE if for_write else _VERSION
    row = session.exec(query, params={"survey_id": survey_id}).first()
    if row is None:
        raise NotFound(f"no survey {survey_id!r}")
    version, created_at = row
    compiled = _compiled.get(survey_id, version, created_at)
    if compiled is None:
        survey = get_survey_row(session, survey_id=survey_id)
        compiled = compile_survey(
            SurveyDefinition.model_validate(survey.definition), survey.version, survey.created_at
        )
        _compiled.put(compiled, survey.created_at)
    return compiled


def compiled_version(survey_id: str, version: int, stamp: object) -> CompiledSurvey | None:
    """This process's compiled copy of that exact version of the survey, if it has one."""
    return _compiled.get(survey_id, version, stamp)


def cached_compiled(survey_id: str) -> CompiledSurvey | None:
    """The compiled survey as this process last found it current, without a database
    read; None if it has not met the survey. Possibly stale: for checks that are
    repeated in the transaction that stores (group commit), not for decisions."""
    return _compiled.latest(survey_id)


def recount_stale_surveys(session: Session) -> list[str]:
    """Rebuild the cells (and narrow rows) of every survey whose cells or narrow rows do
    not count its stored responses: responses stored before the cells existed (migration
    0003), or restored from a backup of the response tables alone. Run at start-up,
    after migrating."""
    stale = []
    for survey_id in session.exec(select(Survey.id)).all():
        counted = {
            cells.counted_responses(session, survey_id=survey_id),
            narrow.counted_responses(session, survey_id=survey_id),
        }
        if counted != {cells.stored_responses(session, survey_id=survey_id)}:
            cells.rebuild(session, load_compiled(session, survey_id=survey_id))
            stale.append(survey_id)
    return stale
