"""REFI-QDA exchange with qualitative analysis tools (NVivo, ATLAS.ti, MAXQDA, QualCoder):
a codebook as `.qdc` both ways, the coded answers as a `.qdpx` project (issue 4, part 6)."""

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import IO, Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import (
    CompiledSurveyDep,
    PrincipalDep,
    SessionDep,
    StreamingPrincipalDep,
    SurveyId,
    get_database,
)
from api.problems import problem_responses
from schemas.base import SLUG_PATTERN
from schemas.codebooks import CodebookPublic
from schemas.exports import QdpxImportResult
from service.coding import refi, refi_import, refi_project
from service.database import Database
from service.permissions import Action, require

router = APIRouter(
    prefix="/v1/surveys/{survey}/codebooks/{question}",
    tags=["codebooks"],
    responses=problem_responses(401, 403, 404),
)

QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="A text question's id.")]
XML_TYPES = ("application/xml", "text/xml", "application/octet-stream")
QDC = "application/xml"
QDPX = "application/zip"
BINARY = {"schema": {"type": "string", "format": "binary"}}


async def xml_body(request: Request) -> bytes:
    """The raw body of an upload, after checking its type (415); its size is capped by
    HEARME_MAX_BODY (413) as it streams in. Read before the session opens, as FastAPI reads
    a JSON body, so a slow upload never holds the database's write turn."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in XML_TYPES:
        raise HTTPException(415, f"the body must be one of {', '.join(XML_TYPES)}")
    return await request.body()


def _attachment(content: bytes, media_type: str, filename: str) -> Response:
    return Response(
        content,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get(
    "/export.qdc",
    response_class=Response,
    responses={200: {"content": {QDC: BINARY}, "description": "A REFI-QDA codebook file."}},
)
def export_codebook_qdc(
    survey: SurveyId, question: QuestionId, session: SessionDep, principal: PrincipalDep
) -> Response:
    """The codebook as a REFI-QDA codebook (`.qdc`, namespace urn:QDA-XML:codebook:1.0)
    (evaluator, admin, coder).

    Themes are top-level codes, their categories child codes; ids and keywords ride in the
    last line of each code's description (`hearme: {...}`); domains and origins are sets.
    GUIDs are derived from the ids, so exporting twice gives the same file.
    """
    content = refi.export_codebook(
        session, principal=principal, survey_id=survey, question_id=question
    )
    return _attachment(content, QDC, f"{survey}-{question}.qdc")


@router.post(
    "/import.qdc",
    responses=problem_responses(409, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": dict.fromkeys(XML_TYPES, BINARY),
        }
    },
)
def import_codebook_qdc(
    body: Annotated[bytes, Depends(xml_body)],
    compiled: CompiledSurveyDep,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
) -> CodebookPublic:
    """Replace a question's codebook with a REFI-QDA codebook file (evaluator, admin).

    The body is the `.qdc` itself (`application/xml` or `application/octet-stream`). Top-level
    codes become themes and their child codes categories; ids come from the `hearme:` line
    of a description, else from the GUIDs this codebook exports, else from the names. The
    result is stored as a PUT of the codebook would be: a new version in the history, and a
    409 when a category that codings hold would disappear. A file with a DTD (entities,
    external references) is refused with 422 and changes nothing.
    """
    return refi.import_codebook(
        session, compiled, principal=principal, question_id=question, data=body
    )


@router.get(
    "/export.qdpx",
    response_class=Response,
    responses={
        200: {"content": {QDPX: BINARY}, "description": "A REFI-QDA project file."},
        **problem_responses(422),
    },
)
def export_project_qdpx(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
    variable: Annotated[
        list[str],
        Query(
            description="Closed questions to add as case variables, besides site and wave "
            "(repeatable; default `role` where the survey has it)."
        ),
    ] = [],  # noqa: B006  (FastAPI copies defaults)
) -> Response:
    """The answers to a coded question with every coder's codings, as a REFI-QDA project
    (`.qdpx`) (evaluator, admin; a site-bound key exports its sites only).

    A zip of `project.qde` (namespace urn:QDA-XML:project:1.0) and `sources/<guid>.txt`:
    each answer is a text source and a case with its site, wave and the chosen questions as
    variables; each coder is a user whose coding of an answer is a selection of the whole
    answer with one coding per category (none for an empty coding); the consensus sets are
    the selections of the user `hearme consensus`.
    """
    content = refi_project.export_project(
        session, compiled, principal=principal, question_id=question, variables=variable
    )
    return _attachment(content, QDPX, f"{compiled.definition.id}-{question}.qdpx")


ZIP_TYPES = ("application/zip", "application/x-zip-compressed", "application/octet-stream")
SPOOL_IN_MEMORY = 8 * 1024 * 1024


@asynccontextmanager
async def zip_upload(request: Request) -> AsyncIterator[IO[bytes]]:
    """The upload, spooled to a temporary file past 8 MiB as it streams in (its size capped
    by HEARME_MAX_IMPORT, 413), after checking its type (415)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in ZIP_TYPES:
        raise HTTPException(415, f"the body must be one of {', '.join(ZIP_TYPES)}")
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        async for chunk in request.stream():
            await run_in_threadpool(spool.write, chunk)
        spool.seek(0)
        yield spool


@router.post(
    "/import.qdpx",
    responses=problem_responses(413, 415, 422),
    openapi_extra={"requestBody": {"required": True, "content": dict.fromkeys(ZIP_TYPES, BINARY)}},
)
async def import_project_qdpx(
    request: Request,
    survey: SurveyId,
    question: QuestionId,
    principal: StreamingPrincipalDep,
    database: Annotated[Database, Depends(get_database)],
    dry_run: Annotated[bool, Query(description="Check and count, store nothing.")] = False,
) -> QdpxImportResult:
    """Codings made in a QDA tool, from a REFI-QDA project such as `export.qdpx` writes
    (evaluator, admin).

    A text source whose GUID or name is an exported answer's is that response; a code is a
    category by GUID, else by name; each selection's or coding's creating user is a coder
    (the user `hearme consensus`: the consensus). For each response and coder found, the
    categories that coder applied become that coder's coding, replacing theirs. All or
    nothing: codes that match no category are a 422 listing them. Only `project.qde` is
    read, under a size cap (413); any DTD is refused (422).
    """
    # The key first (401, 403), then the upload's type (415); the upload streams in before
    # the unit of work opens, so a slow one never holds the database (nor SQLite's write
    # turn), as for the responses' import.
    require(principal, Action.import_projects)
    async with zip_upload(request) as body:
        result = await database.run(
            refi_import.import_into_question,
            write=True,
            principal=principal,
            survey_id=survey,
            question_id=question,
            data=body,
            dry_run=dry_run,
        )
    return QdpxImportResult(**result.__dict__)
