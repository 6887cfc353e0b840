"""The evaluators' dashboard: responses by site and wave, every table with its chart,
filters, groups, a wave comparison, the downloads of §10, and "publish as a release" of
what is on screen. Tables, charts and files come from the same services as /v1."""

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from api import exports, releases, reports
from api.deps import SessionDep
from api.stats import FILTER_PREFIX
from api.web.session import Csrf, Form, WebPrincipal, one, page, redirect
from schemas.base import SLUG_PATTERN
from schemas.exports import ExportFormat
from schemas.releases import ReleaseIn
from schemas.texts import resolve as localised
from service import workbench
from service.errors import FieldProblem, Invalid
from service.exports import charts
from service.exports import reports as report_tables
from service.keys import Principal
from service.stats import cells, tables
from service.stats.query import StatsQuery, resolve
from service.surveys import load_compiled
from service.validation import CompiledSurvey

router = APIRouter(prefix="/app/surveys/{survey}", include_in_schema=False)

SurveyId = Annotated[str, Path(pattern=SLUG_PATTERN)]
QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN)]
Many = Annotated[list[str], Query(default_factory=list)]
SCOPE_FIELDS = ("site", "wave", "by")


def web_compiled(session: SessionDep, _: WebPrincipal, survey: SurveyId) -> CompiledSurvey:
    """The survey of the path, once the session is known (a stranger signs in first)."""
    return load_compiled(session, survey_id=survey)


Compiled = Annotated[CompiledSurvey, Depends(web_compiled)]


def scope_params(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The statistics parameters of a request (site, wave, by, q.*), blanks dropped."""
    return [
        (name, value)
        for name, value in params
        if value and (name in SCOPE_FIELDS or name.startswith(FILTER_PREFIX))
    ]


def stats_query(
    compiled: CompiledSurvey, principal: Principal, params: list[tuple[str, str]]
) -> StatsQuery:
    """The same checks as the statistics routes' (`service.stats.query.resolve`)."""
    chosen = scope_params(params)
    by = next((v for n, v in chosen if n == "by"), None)
    return resolve(
        compiled,
        principal=principal,
        sites=[v for n, v in chosen if n == "site"],
        waves=[v for n, v in chosen if n == "wave"],
        filters=[(n.removeprefix(FILTER_PREFIX), v) for n, v in chosen if n != "by" and "." in n],
        by=by,
        min_cell=None,
    )


def _filterable(compiled: CompiledSurvey) -> list[Any]:
    return [q for q in compiled.definition.questions if q.type in cells.SINGLE]


def _comparison(
    session: SessionDep,
    compiled: CompiledSurvey,
    principal: Principal,
    params: list[tuple[str, str]],
    waves: tuple[str, str] | None,
) -> list[dict[str, Any]]:
    """Each likert question's comparison of two waves, within the on-screen filters."""
    if waves is None:
        return []
    base = [(n, v) for n, v in scope_params(params) if n not in ("wave", "by")]
    query = stats_query(compiled, principal, [*base, ("wave", waves[0]), ("wave", waves[1])])
    found = []
    for question in compiled.definition.questions:
        if question.type == "likert":
            body = tables.compare(session, compiled, question_id=question.id, query=query)
            chart = urlencode([*base, ("compare", waves[0]), ("compare", waves[1])])
            found.append({"question": question, "body": body, "chart": chart})
    return found


@router.get("/dashboard")
def web_dashboard(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    compare: Many,
) -> HTMLResponse:
    """The study at a glance, within the filters chosen (evaluator, admin)."""
    params = list(request.query_params.multi_items())
    query = stats_query(compiled, principal, params)
    found = report_tables.report_tables(session, compiled, principal=principal, query=query)
    definition = compiled.definition
    counts = workbench.responses_by_site_and_wave(
        session, principal=principal, survey_id=definition.id
    )
    waves = [w.id for w in definition.waves]
    pair = (compare[0], compare[1]) if len(compare) == 2 else None
    if pair is None and len(waves) >= 2:
        pair = (waves[0], waves[1])
    now = datetime.now(UTC)
    live = {
        w.id
        for w in definition.waves
        if (w.opens_at is None or w.opens_at <= now) and (w.closes_at is None or now <= w.closes_at)
    }
    chosen = scope_params(params)
    return page(
        request,
        "dashboard.html",
        principal,
        survey=definition,
        compiled=compiled,
        tables=[report_tables.table_text(t) for t in found],
        counts=counts,
        live=live,
        visible_sites=[s for s in definition.sites if principal.may_see_site(s.id)],
        filterable=_filterable(compiled),
        chosen=chosen,
        chosen_set={f"{n}={v}" for n, v in chosen},
        by=query.by,
        scope_query=urlencode(chosen),
        comparisons=_comparison(session, compiled, principal, params, pair),
        pair=pair,
        export_formats=["csv", "xlsx", "sav", "dta"],
    )


@router.get("/chart/{question}")
def web_chart(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    question: QuestionId,
    compare: Many,
) -> Response:
    """One table's chart as SVG, for the dashboard's <img> (the page loads no script)."""
    params = list(request.query_params.multi_items())
    known = question in compiled.questions
    title = localised(compiled.questions[question].text) if known else question
    if len(compare) == 2:
        query = stats_query(compiled, principal, [*params, *(("wave", w) for w in compare)])
        body: Any = tables.compare(session, compiled, question_id=question, query=query)
        content, media = charts.chart("compare", body.model_dump(mode="json"), "svg", title=title)
        return Response(content, media_type=media, headers={"Cache-Control": "no-store"})
    query = stats_query(compiled, principal, params)
    found = report_tables.report_tables(
        session, compiled, principal=principal, query=query, questions=[question]
    )[0]
    content, media = charts.chart(found.kind, found.body, "svg", title=found.title)
    return Response(content, media_type=media, headers={"Cache-Control": "no-store"})


@router.get("/download/export.{format}")
def web_export(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    format: ExportFormat,
    site: Many,
    wave: Many,
) -> Response:
    """The export file of §10 (`/v1/.../export`), for the session's key."""
    return exports.export_responses(request, compiled, principal, session, site, wave, None, format)


@router.get("/download/dictionary.csv")
def web_dictionary(session: SessionDep, principal: WebPrincipal, compiled: Compiled) -> Any:
    """The export's data dictionary as CSV."""
    return exports.export_dictionary(compiled, principal, session, None, "csv")


@router.get("/download/report.html")
def web_report(
    request: Request, session: SessionDep, principal: WebPrincipal, compiled: Compiled
) -> HTMLResponse:
    """The self-contained report page of what is on screen (`/v1/.../report`)."""
    query = stats_query(compiled, principal, list(request.query_params.multi_items()))
    page_ = reports.report(compiled, principal, session, query, [], "html")
    page_.headers["Content-Disposition"] = f'attachment; filename="{compiled.definition.id}.html"'
    return page_


def release_of(compiled: CompiledSurvey, fields: dict[str, list[str]]) -> ReleaseIn:
    """The release of the tables on screen: each chosen question with the screen's
    sites, waves, filters and group."""
    params = [(n, v) for n, values in fields.items() for v in values]
    chosen = scope_params(params)
    sites = [v for n, v in chosen if n == "site"] or None
    waves = [v for n, v in chosen if n == "wave"] or None
    by = next((v for n, v in chosen if n == "by"), None)
    q: dict[str, list[Any]] = {}
    for name, value in chosen:
        if name.startswith(FILTER_PREFIX):
            q.setdefault(name.removeprefix(FILTER_PREFIX), []).append(value)
    specs = []
    for question_id in fields.get("table", []):
        question = compiled.questions.get(question_id)
        if question is None:
            continue
        kind = report_tables.KIND_OF_TYPE.get(question.type, "themes")
        specs.append(
            {
                "id": question_id,
                "kind": kind,
                "question": question_id,
                "by": by,
                "site": sites,
                "wave": waves,
                "q": q or None,
            }
        )
    data = {"id": one(fields, "id").strip(), "title": one(fields, "title").strip(), "tables": specs}
    try:
        return ReleaseIn.model_validate(data)
    except ValidationError as exc:
        problems = [FieldProblem(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
        raise Invalid("the release is not valid", problems) from exc


@router.post("/publish", dependencies=[Csrf])
def web_publish(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    fields: Form,
) -> Response:
    """Publish the tables on screen as a release (§7.6), then show it."""
    data = release_of(compiled, fields)
    release, _ = releases.publish(request, session, compiled, principal=principal, data=data)
    return redirect(f"/app/surveys/{compiled.definition.id}/releases/{release.id}")
