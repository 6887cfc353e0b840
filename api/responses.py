"""Submissions, imports, reading and erasing responses (contract §5)."""

import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from api.deps import (
    PrincipalDep,
    SessionDep,
    StreamingPrincipalDep,
    Submitter,
    SubmitterDep,
    SurveyId,
    bearer,
    current_survey,
    get_database,
    get_group_commit,
    get_settings,
    get_submitter,
    require_json,
)
from api.lean import Declared, json_body
from api.logs import request_id_var
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import Page
from schemas.responses import ImportResult, ResponsePublic, SubmissionIn
from service import erasure, imports, responses, submissions
from service.database import Database
from service.errors import DomainError, invalid_field
from service.settings import Settings

router = APIRouter(
    prefix="/v1/surveys/{survey}/responses",
    tags=["responses"],
    responses=problem_responses(401, 403, 404),
)

ResponseId = Annotated[str, Path(max_length=36, description="The response's id.")]
# Read by hand on the hot route (FastAPI's per-request handling of a declared header
# parameter was a measurable share of a submission's CPU); documented as it was declared.
IDEMPOTENCY_KEY_DOC = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {
        "anyOf": [{"type": "string", "minLength": 1, "maxLength": 200}, {"type": "null"}],
        "description": "Retry-safe key.",
        "title": "Idempotency-Key",
    },
    "description": "Retry-safe key.",
}
IMPORT_TYPES = ("application/x-ndjson", "text/csv")
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@router.post(
    "",
    status_code=201,
    response_model=ResponsePublic,
    dependencies=[Depends(require_json)],
    responses={
        200: {"model": ResponsePublic, "description": "An idempotent replay: the first response."},
        **problem_responses(409, 413, 415, 422),
    },
    openapi_extra={"parameters": [IDEMPOTENCY_KEY_DOC]},
)
async def submit_response(
    request: Request, submitter: SubmitterDep, data: SubmissionIn
) -> Response:
    """Submit one response (submitter of the site, or admin)."""
    return await _submit(request, submitter, data)


async def serve_submit(request: Request, declared: Declared) -> Response:
    """`submit_response` as served (`api.lean`): its dependency and parameters in the
    order FastAPI resolves them, without FastAPI's per-request machinery."""
    body = await json_body(request)
    await require_json(request)
    errors = declared.path_errors(request)
    submitter = None
    if not errors:
        credentials = await bearer(request)
        submitter = await get_submitter(request, credentials, request.path_params["survey"])
    data, body_errors = await declared.body(body)
    errors += body_errors
    if errors:
        raise RequestValidationError(errors, body=body)
    assert submitter is not None
    return await _submit(request, submitter, data)


async def _submit(request: Request, submitter: Submitter, data: SubmissionIn) -> Response:
    idempotency_key = request.headers.get("idempotency-key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise invalid_field(("header", "Idempotency-Key"), "must be 1 to 200 characters")
    # The hot path: checked here, outside any transaction, then stored by group commit
    # together with the submissions that arrive meanwhile (`service.submissions`); the
    # answer waits until that batch has committed.
    try:
        pending = submissions.prepare(
            submitter.compiled,
            principal=submitter.principal,
            data=data,
            idempotency_key=idempotency_key,
            request_id=request_id_var.get(None),
        )
    except DomainError:
        # Checked against the cached version: judge a failure by the current one.
        current = await current_survey(request, submitter.compiled.definition.id)
        if not submitter.cached or current is submitter.compiled:
            raise
        pending = submissions.prepare(
            current,
            principal=submitter.principal,
            data=data,
            idempotency_key=idempotency_key,
            request_id=request_id_var.get(None),
        )
    stored = await get_group_commit(request).submit(pending)
    request.state.audit_recorded = True  # by the batch, in the transaction that stored it
    # Serialised by the writer, by pydantic-core in one call: the body is the stored
    # response as built from checked values, so FastAPI's second validation is skipped.
    return Response(
        stored.body, status_code=201 if stored.created else 200, media_type="application/json"
    )


@router.post(
    ":import",
    responses=problem_responses(413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def import_responses(
    request: Request,
    survey: SurveyId,
    principal: StreamingPrincipalDep,
    database: Annotated[Database, Depends(get_database)],
    settings: Annotated[Settings, Depends(get_settings)],
) -> ImportResult:
    """Import historical submissions, NDJSON or CSV, all or nothing (admin, evaluator)."""
    imports.authorize(principal)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in IMPORT_TYPES:
        raise HTTPException(415, "an import is application/x-ndjson or text/csv")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        async for chunk in request.stream():
            await run_in_threadpool(spool.write, chunk)
        spool.seek(0)
        count = await database.run(
            imports.import_into_survey,
            write=True,
            principal=principal,
            survey_id=survey,
            body=spool,
            media_type=media_type,
            batch_size=settings.import_batch_size,
        )
    return ImportResult(imported=count)


@router.get("", responses=problem_responses(422))
def list_responses(
    survey: SurveyId,
    session: SessionDep,
    principal: PrincipalDep,
    site: Annotated[list[str], Query(default_factory=list)],
    wave: Annotated[list[str], Query(default_factory=list)],
    limit: Limit = DEFAULT,
    cursor: Cursor = None,
) -> Page[ResponsePublic]:
    """List responses, oldest first (evaluator of its sites, admin)."""
    rows, next_cursor = responses.list_responses(
        session,
        principal=principal,
        survey_id=survey,
        sites=site,
        waves=wave,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[responses.to_public(r) for r in rows], next_cursor=next_cursor)


@router.get("/{response_id}")
def get_response(
    survey: SurveyId, response_id: ResponseId, session: SessionDep, principal: PrincipalDep
) -> ResponsePublic:
    """Read one response (evaluator of its site, admin)."""
    row = responses.get_response(
        session, principal=principal, survey_id=survey, response_id=response_id
    )
    return responses.to_public(row)


@router.delete("/{response_id}", status_code=204)
def erase_response(
    survey: SurveyId, response_id: ResponseId, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Erase a response and everything derived from it (admin)."""
    erasure.erase_response(session, principal=principal, survey_id=survey, response_id=response_id)
    return Response(status_code=204)
