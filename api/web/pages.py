"""Sign-in, sign-out, the home page and the readers' releases."""

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from api.deps import SessionDep, _authenticated, rate_limited
from api.web.session import (
    COOKIE,
    SIGN_IN_COOKIE,
    Csrf,
    Form,
    WebPrincipal,
    one,
    page,
    redirect,
    set_cookie,
)
from schemas.base import SLUG_PATTERN
from service import web_sessions, workbench
from service.errors import Forbidden, Unauthenticated
from service.exports import reports
from service.exports.rows import survey_codebooks
from service.permissions import Action, allowed
from service.releases import publication
from service.surveys import list_surveys, load_compiled

router = APIRouter(prefix="/app", include_in_schema=False)

SurveyId = Annotated[str, Path(pattern=SLUG_PATTERN)]
ReleaseId = Annotated[str, Path(pattern=SLUG_PATTERN)]
SESSION_SECONDS = web_sessions.SESSION_HOURS * 3600


@router.get("")
def web_root() -> RedirectResponse:
    return redirect("/app/")


def _sign_in_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = page(
        request,
        "sign_in.html",
        None,
        status_code=status,
        error=error,
        hours=web_sessions.SESSION_HOURS,
        sign_in_csrf=web_sessions.csrf_token(nonce),
    )
    set_cookie(request, response, SIGN_IN_COOKIE, nonce, 3600)
    return response


@router.get("/sign-in")
def web_sign_in_form(request: Request) -> Response:
    """The sign-in form; its CSRF token is bound to a pre-session cookie (double submit)."""
    return _sign_in_page(request)


@router.post("/sign-in")
def web_sign_in(request: Request, session: SessionDep, fields: Form) -> Response:
    """An API key in, a session cookie out; failures count against the address's limit."""
    nonce = request.cookies.get(SIGN_IN_COOKIE) or ""
    if not nonce or not web_sessions.csrf_matches(nonce, one(fields, "csrf") or None):
        raise Forbidden("the sign-in form's CSRF token is missing or wrong: reload the page")
    try:
        with rate_limited(request):
            principal, token = web_sessions.sign_in(session, api_key=one(fields, "key"))
    except Unauthenticated as exc:
        return _sign_in_page(request, error=f"Not signed in: {exc.detail}.", status=401)
    _authenticated(request, principal)
    response = redirect("/app/")
    set_cookie(request, response, COOKIE, token, SESSION_SECONDS)
    response.delete_cookie(SIGN_IN_COOKIE, path="/app", httponly=True, samesite="strict")
    return response


@router.post("/sign-out", dependencies=[Csrf])
def web_sign_out(request: Request, session: SessionDep, _: WebPrincipal) -> Response:
    """End the session: its row goes, so the cookie is worthless even if replayed."""
    web_sessions.sign_out(session, token=request.cookies.get(COOKIE))
    response = redirect("/app/sign-in")
    response.delete_cookie(COOKIE, path="/app", httponly=True, samesite="strict")
    return response


@router.get("/")
def web_home(request: Request, session: SessionDep, principal: WebPrincipal) -> HTMLResponse:
    """What this key may open: dashboards, coding, agreement, releases."""
    surveys: list[dict[str, Any]] = []
    if allowed(principal, Action.read_surveys):
        rows, _ = list_surveys(session, principal=principal, limit=100, cursor=None)
        for row in rows:
            compiled = load_compiled(session, survey_id=row.id)
            coded = survey_codebooks(session, compiled) if allowed(principal, Action.code) else {}
            questions = [compiled.questions[q] for q in coded]
            surveys.append({"id": row.id, "title": row.title, "coded": questions})
    releases = None
    if allowed(principal, Action.read_releases):
        releases = workbench.readable_releases(session, principal=principal)
    return page(request, "home.html", principal, surveys=surveys, releases=releases)


@router.get("/surveys/{survey}/releases/{release}")
def web_release(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    survey: SurveyId,
    release: ReleaseId,
) -> HTMLResponse:
    """A release as its report page (§10), with the workbench's navigation on top."""
    compiled = load_compiled(session, survey_id=survey)
    found = publication.get_release(
        session, principal=principal, survey_id=survey, release_id=release
    )
    html = reports.render_report(
        title=found.title,
        subtitle=f"Release {found.id} of survey {survey}, {found.n_responses} responses,"
        f" small cells suppressed (K = {found.min_cell})",
        tables_=reports.release_tables(
            compiled,
            tables_=found.tables,
            published_at=found.published_at,
            min_cell=found.min_cell,
        ),
        generated_at=found.published_at,
    )
    bar = bytes(page(request, "release_bar.html", principal).body).decode()
    html = html.replace("<body>", "<body>\n" + bar, 1)
    html = html.replace("</head>", '<link rel="stylesheet" href="/app/static/app.css">\n</head>', 1)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})
