"""Releases (contract §7.6): what outside readers see, frozen at publication."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlmodel import Session

from api.deps import CompiledSurveyDep, PrincipalDep, SessionDep, get_settings, require_json
from api.languages import LabelsLang
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import SLUG_PATTERN, Page
from schemas.releases import (
    AuditSummary,
    Release,
    ReleaseFormat,
    ReleaseIn,
    ReleasePublic,
    ReleaseSummary,
    ReleaseTableFormat,
)
from schemas.texts import resolve
from service.exports import charts, reports
from service.keys import Principal
from service.releases import publication, render
from service.stats import export
from service.validation import CompiledSurvey

router = APIRouter(
    prefix="/v1/surveys/{survey}/releases",
    tags=["releases"],
    responses=problem_responses(401, 403, 404),
)

ReleaseId = Annotated[str, Path(pattern=SLUG_PATTERN, description="The release's id.")]
TableId = Annotated[str, Path(pattern=SLUG_PATTERN, description="The table's id.")]
Format = Annotated[
    ReleaseFormat,
    Query(description="`csv` for one text/csv file; `html` for the report page (§10)."),
]
TableFormat = Annotated[
    ReleaseTableFormat,
    Query(description="`csv` for text/csv; `svg`, `png` or `vega` (Vega-Lite v5) for a chart."),
]
CSV_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "text/csv": {"schema": {"type": "string"}},
            "text/html": {"schema": {"type": "string"}},
        }
    },
    **problem_responses(410, 422),
}
TABLE_DOC: dict[int | str, dict[str, Any]] = {
    200: {"content": charts.CHART_CONTENT},
    **problem_responses(410, 422),
}


def _csv(records: Iterator[dict[str, Any]], name: str) -> StreamingResponse:
    return StreamingResponse(
        export.stream(records),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


def publish(
    request: Request,
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    data: ReleaseIn,
) -> tuple[Release, AuditSummary]:
    """Publish `data` under this server's settings (its default threshold and audit time
    budget), naming the release in the audit trail: the one way the API and the
    workbench's "publish as a release" both take, so the two cannot drift apart."""
    request.state.audit_target = data.id
    settings = get_settings(request)
    return publication.publish(
        session,
        compiled,
        principal=principal,
        data=data,
        default_min_cell=settings.min_cell,
        audit_seconds=settings.release_audit_seconds,
    )


@router.post(
    "",
    status_code=201,
    dependencies=[Depends(require_json)],
    responses=problem_responses(409, 413, 415, 422),
)
def publish_release(
    request: Request,
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    session: SessionDep,
    data: ReleaseIn,
) -> ReleasePublic:
    """Publish a release: compute its tables now, suppress jointly, freeze (evaluator, admin)."""
    release, audit = publish(request, session, compiled, principal=principal, data=data)
    body = render.release_body(release)
    body.audit = audit
    return body


@router.get("", responses=problem_responses(422))
def list_releases(
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    session: SessionDep,
    limit: Limit = DEFAULT,
    cursor: Cursor = None,
) -> Page[ReleaseSummary]:
    """The survey's releases the key may see, oldest first (reader, evaluator, admin)."""
    rows, next_cursor = publication.list_releases(
        session,
        principal=principal,
        survey_id=compiled.definition.id,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=[render.summary(r) for r in rows], next_cursor=next_cursor)


@router.get("/{release}", responses=CSV_DOC, response_model=ReleasePublic)
def get_release(
    compiled: CompiledSurveyDep,
    release: ReleaseId,
    principal: PrincipalDep,
    session: SessionDep,
    lang: LabelsLang,
    format: Format = "json",
) -> Any:
    """A release whole; as CSV, one file with a leading `table` column; as HTML, one
    self-contained page with each table, its chart and its scope (§10)."""
    found = publication.get_release(
        session, principal=principal, survey_id=compiled.definition.id, release_id=release
    )
    if format == "csv":
        return _csv(render.release_lines(found, lang), found.id)
    if format == "html":
        page = reports.render_report(
            title=found.title,
            subtitle=f"Release {found.id} of survey {compiled.definition.id}, "
            f"{found.n_responses} responses, small cells suppressed (K = {found.min_cell})",
            tables_=reports.release_tables(
                compiled,
                tables_=render.tables_in(found, lang),
                titles={t["id"]: render.table_title(found, t["id"], lang) for t in found.tables},
                published_at=found.published_at,
                min_cell=found.min_cell,
                lang=lang,
            ),
            generated_at=found.published_at,
            lang=lang,
        )
        return HTMLResponse(page)
    return render.release_body(found, lang)


@router.get("/{release}/tables/{table}", responses=TABLE_DOC)
def get_release_table(
    compiled: CompiledSurveyDep,
    release: ReleaseId,
    table: TableId,
    principal: PrincipalDep,
    session: SessionDep,
    lang: LabelsLang,
    format: TableFormat = "json",
) -> dict[str, Any]:
    """One table of a release: its request and its §7.1-7.3 body, as published; or its
    chart."""
    found = publication.get_release(
        session, principal=principal, survey_id=compiled.definition.id, release_id=release
    )
    body = render.table_body(found, table, lang)
    if format == "csv":
        return _csv(render.table_lines(body), f"{found.id}-{table}")  # type: ignore[return-value]
    if format in charts.CHART_FORMATS:
        question = compiled.questions.get(body["question"])
        title = render.table_title(found, table, lang)
        if title is None and question is not None:
            title = resolve(question.text, lang)
        content, media_type = charts.chart(body["kind"], body, format, title=title, lang=lang)
        return Response(content, media_type=media_type)  # type: ignore[return-value]
    return body


@router.delete("/{release}", status_code=204, responses=problem_responses(410))
def withdraw_release(
    compiled: CompiledSurveyDep,
    release: ReleaseId,
    principal: PrincipalDep,
    session: SessionDep,
) -> Response:
    """Withdraw a release (admin): 410 afterwards; it still binds later audits."""
    publication.withdraw(
        session, principal=principal, survey_id=compiled.definition.id, release_id=release
    )
    return Response(status_code=204)
