"""Reports (contract §10): a self-contained HTML page of live statistics with charts."""

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from fastapi.responses import HTMLResponse

from api.deps import CompiledSurveyDep, PrincipalDep, SessionDep
from api.problems import problem_responses
from api.stats import FILTER_DOC, StatsQueryDep
from schemas.base import SLUG_PATTERN
from schemas.texts import resolve
from service.exports import reports

router = APIRouter(
    prefix="/v1/surveys/{survey}/report",
    tags=["statistics"],
    responses=problem_responses(401, 403, 404, 422),
)


@router.get(
    "",
    response_class=Response,
    openapi_extra=FILTER_DOC,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def report(
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    session: SessionDep,
    query: StatsQueryDep,
    question: Annotated[
        list[Annotated[str, Query(pattern=SLUG_PATTERN)]],
        Query(
            default_factory=list,
            description="The questions to report (repeatable); default every question that "
            "has a table.",
        ),
    ],
    format: Annotated[Literal["html"], Query(description="`html`.")] = "html",
) -> HTMLResponse:
    """One self-contained HTML page (evaluator, admin): each table with its chart, its scope
    (sites, waves, n) and the time it was computed; filters as for statistics (§7)."""
    found = reports.report_tables(
        session, compiled, principal=principal, query=query, questions=question
    )
    definition = compiled.definition
    page = reports.render_report(
        title=resolve(definition.title, query.lang),
        subtitle=f"Survey {definition.id}: live statistics",
        tables_=found,
        generated_at=datetime.now(UTC),
        lang=query.lang,
    )
    return HTMLResponse(page)
