"""Statistics (contract §7): JSON or streamed CSV, suppressed for readers."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from api.deps import CompiledSurveyDep, PrincipalDep, SessionDep
from api.languages import LangQuery
from api.problems import problem_responses
from schemas import texts
from schemas.base import SLUG_PATTERN
from schemas.stats import Composition, Likert, StatFormat, Themes, WaveComparison
from service.coding import codebooks
from service.exports import charts
from service.stats import export, tables, themes
from service.stats.query import StatsQuery, resolve

router = APIRouter(
    prefix="/v1/surveys/{survey}/stats",
    tags=["statistics"],
    responses=problem_responses(401, 403, 404, 422),
)

QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="The question's id.")]
FILTER_PREFIX = "q."

FILTER_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "q.<question>",
            "in": "query",
            "required": False,
            "description": (
                "Filter on a choice, likert or boolean answer: `q.role=police` (`true`/"
                "`false` for booleans); repeat for any of several values; several questions"
                " combine (all must hold)."
            ),
            "schema": {"type": "string"},
        }
    ]
}
CSV_DOC: dict[int | str, dict[str, Any]] = {200: {"content": charts.CHART_CONTENT}}


def stats_query(
    request: Request,
    compiled: CompiledSurveyDep,
    principal: PrincipalDep,
    site: Annotated[
        list[str], Query(default_factory=list, description="Only these sites (repeatable).")
    ],
    wave: Annotated[
        list[str], Query(default_factory=list, description="Only these waves (repeatable).")
    ],
    by: Annotated[
        str | None,
        Query(pattern=SLUG_PATTERN, description="Group by `site`, `wave` or a question id."),
    ] = None,
    min_cell: Annotated[
        int | None,
        Query(ge=1, le=1_000_000, description="Suppress counts below this (§7.5)."),
    ] = None,
    lang: LangQuery = None,
) -> StatsQuery:
    filters = [
        (name.removeprefix(FILTER_PREFIX), value)
        for name, value in request.query_params.multi_items()
        if name.startswith(FILTER_PREFIX)
    ]
    return resolve(
        compiled,
        principal=principal,
        sites=site,
        waves=wave,
        filters=filters,
        by=by,
        min_cell=min_cell,
        lang=lang,
    )


StatsQueryDep = Annotated[StatsQuery, Depends(stats_query)]
Format = Annotated[
    StatFormat,
    Query(description="`csv` for text/csv; `svg`, `png` or `vega` (Vega-Lite v5) for a chart."),
]


def _respond(
    body: BaseModel,
    records: Iterator[dict[str, Any]],
    fmt: StatFormat,
    kind: charts.ChartKind = "composition",
    title: str | None = None,
    lang: str | None = None,
) -> Any:
    if fmt == "csv":
        return StreamingResponse(export.stream(records), media_type="text/csv; charset=utf-8")
    if fmt in charts.CHART_FORMATS:
        content, media_type = charts.chart(
            kind, body.model_dump(mode="json"), fmt, title=title, lang=lang
        )
        return Response(content, media_type=media_type)
    return body


@router.get("/composition/{question}", openapi_extra=FILTER_DOC, responses=CSV_DOC)
def composition(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    query: StatsQueryDep,
    session: SessionDep,
    format: Format = "json",
) -> Composition:
    """Who answered what: a choice, multi-choice, boolean or likert question (Table 1)."""
    body = tables.composition(session, compiled, question_id=question, query=query)
    title = texts.resolve(compiled.questions[question].text, query.lang)
    return _respond(body, export.lines(body), format, "composition", title, query.lang)  # type: ignore[no-any-return]


@router.get("/likert/{question}", openapi_extra=FILTER_DOC, responses=CSV_DOC)
def likert(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    query: StatsQueryDep,
    session: SessionDep,
    format: Format = "json",
) -> Likert:
    """A likert question's distribution, mean, median and top/bottom-2 shares (Table 2)."""
    body = tables.likert(session, compiled, question_id=question, query=query)
    title = texts.resolve(compiled.questions[question].text, query.lang)
    return _respond(body, export.lines(body), format, "likert", title, query.lang)  # type: ignore[no-any-return]


@router.get("/likert/{question}/compare", openapi_extra=FILTER_DOC, responses=CSV_DOC)
def compare_waves(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    query: StatsQueryDep,
    session: SessionDep,
    format: Format = "json",
) -> WaveComparison:
    """Wave b against wave a (`?wave=a&wave=b`), with a Mann-Whitney U test."""
    body = tables.compare(session, compiled, question_id=question, query=query)
    title = texts.resolve(compiled.questions[question].text, query.lang)
    return _respond(body, export.comparison_lines(body), format, "compare", title, query.lang)  # type: ignore[no-any-return]


@router.get("/themes/{question}", openapi_extra=FILTER_DOC, responses=CSV_DOC)
def theme_table(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    query: StatsQueryDep,
    session: SessionDep,
    format: Format = "json",
) -> Themes:
    """Themes and categories of a coded text question, from the effective sets (Table 3)."""
    body = themes.themes(
        session, compiled, question_id=question, query=query, codebook_of=codebooks.codebook_of
    )
    title = texts.resolve(compiled.questions[question].text, query.lang)
    return _respond(body, export.theme_lines(body), format, "themes", title, query.lang)  # type: ignore[no-any-return]
