"""Exports of responses for SPSS, Stata, Excel and R (contract §10)."""

import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask

from api.deps import CompiledSurveyDep, PrincipalDep, SessionDep, get_database
from api.languages import LabelsLang
from api.problems import problem_responses
from schemas.exports import DictionaryFormat, ExportDictionary, ExportFormat
from service.exports import files

router = APIRouter(
    prefix="/v1/surveys/{survey}/export",
    tags=["exports"],
    responses=problem_responses(401, 403, 404, 422),
)

BINARY = {"schema": {"type": "string", "format": "binary"}}
FILE_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The export file.",
        "content": {media.split(";")[0]: BINARY for media in files.MEDIA_TYPES.values()},
    }
}
Sites = Annotated[list[str], Query(default_factory=list, description="Only these sites.")]
Waves = Annotated[list[str], Query(default_factory=list, description="Only these waves.")]


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("", response_class=Response, responses=FILE_DOC)
def export_responses(
    request: Request,
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    session: SessionDep,
    site: Sites,
    wave: Waves,
    lang: LabelsLang,
    format: Annotated[ExportFormat, Query(description="csv, xlsx, sav (SPSS) or dta (Stata).")],
) -> Response:
    """One row per response, erased ones never (evaluator, admin; a site-bound key exports
    its sites only).

    Columns: `response_id`, `site`, `wave`, `language`, `submitted_at`, `received_at`, then
    each question in definition order (a multi-choice as one 0/1 column per option; a coded
    text question followed by its coding status and 0/1 columns per category and theme
    from the effective set). `sav` and `dta` carry value and variable labels; `xlsx` also
    holds the sheets `dictionary` and `codebook`. CSV is streamed; the others are written
    to a temporary file first, so memory does not grow with the study.
    """
    plan = files.plan_export(
        session, compiled, principal=principal, sites=site, waves=wave, lang=lang
    )
    name = f"{compiled.definition.id}.{format}"
    if format == "csv":
        return StreamingResponse(
            files.csv_stream(get_database(request), plan),
            media_type=files.MEDIA_TYPES["csv"],
            headers=_disposition(name),
        )
    handle, spooled = tempfile.mkstemp(prefix="hearme-export-", suffix=f".{format}")
    os.close(handle)
    path = Path(spooled)
    try:
        files.write_file(session, plan, format, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path,
        media_type=files.MEDIA_TYPES[format],
        headers=_disposition(name),
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get(
    "/dictionary",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
def export_dictionary(
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    session: SessionDep,
    lang: LabelsLang,
    format: Annotated[DictionaryFormat, Query(description="`csv` for text/csv.")] = "json",
) -> ExportDictionary:
    """Every column of the export: its names in CSV/XLSX, SPSS and Stata, its label, type,
    question and value labels (evaluator, admin)."""
    body = files.dictionary(session, compiled, principal=principal, lang=lang)
    if format == "csv":
        return Response(  # type: ignore[return-value]
            files.dictionary_csv(body), media_type="text/csv; charset=utf-8"
        )
    return body
