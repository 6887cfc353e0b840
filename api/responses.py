"""Submissions, imports, reading and erasing responses (contract §5)."""

import tempfile
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import (
    PrincipalDep,
    SessionDep,
    StreamingPrincipalDep,
    SubmitterDep,
    SurveyId,
    database_turn,
    get_database,
    get_settings,
    require_json,
)
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import Page
from schemas.responses import ImportResult, ResponsePublic, SubmissionIn
from service import imports, responses
from service.database import Database
from service.settings import Settings

router = APIRouter(
    prefix="/v1/surveys/{survey}/responses",
    tags=["responses"],
    responses=problem_responses(401, 403, 404),
)

ResponseId = Annotated[str, Path(max_length=36, description="The response's id.")]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, description="Retry-safe key."),
]
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
)
async def submit_response(
    request: Request,
    submitter: SubmitterDep,
    data: SubmissionIn,
    idempotency_key: IdempotencyKey = None,
) -> ResponsePublic | JSONResponse:
    """Submit one response (submitter of the site, or admin)."""
    # The hot path: the write transaction runs whole in one worker thread once this
    # request has its turn, rather than open across the hops of several sync
    # dependencies (on SQLite, writers queue for that stretch alone).
    async with database_turn(request, write=True):
        stored, created = await run_in_threadpool(
            responses.submit_in_transaction,
            get_database(request),
            survey_id=submitter.compiled.definition.id,
            principal=submitter.principal,
            data=data,
            idempotency_key=idempotency_key,
        )
    request.state.audit_target = stored.id
    if created:
        return stored
    return JSONResponse(stored.model_dump(mode="json"), status_code=200)


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
        count = await run_in_threadpool(
            imports.import_into,
            database,
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
    responses.erase_response(
        session, principal=principal, survey_id=survey, response_id=response_id
    )
    return Response(status_code=204)
