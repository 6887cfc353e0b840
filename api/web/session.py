"""Browser sessions for the pages: the cookie, the CSRF check and the page templates.

The cookie holds a random session token (never the API key): HttpOnly, SameSite=Strict,
Secure when the request came over https (directly or, behind a proxy, as
`X-Forwarded-Proto: https`). Every POST carries the session's CSRF token in a hidden
field; the sign-in form, before there is a session, carries one tied to a pre-session
cookie (double submit). Authentication failures count against the address exactly as
for the API (`api.limits`), and the session's key against its request limit.
"""

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.deps import SessionDep, _authenticated, rate_limited
from schemas.texts import resolve
from service import web_sessions
from service.errors import Forbidden, Unauthenticated
from service.keys import Principal
from service.permissions import Action, allowed
from service.stats.query import levels

COOKIE = "hearme_session"
SIGN_IN_COOKIE = "hearme_sign_in"
MAX_FORM = 64 * 1024

templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["label"] = resolve  # the one label resolution (schemas/texts.py)
templates.globals["levels"] = levels


class SignInRequired(Exception):
    """A page asked for without a live session: the browser goes to the sign-in form."""


async def sign_in_required(_: Request, __: Exception) -> Response:
    return RedirectResponse("/app/sign-in", status_code=303)


def secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=age,
        path="/app",
        httponly=True,
        samesite="strict",
        secure=secure(request),
    )


def web_principal(request: Request, session: SessionDep) -> Principal:
    """The caller of a page, from its session cookie; else to the sign-in form."""
    token = request.cookies.get(COOKIE)
    try:
        with rate_limited(request):
            principal = web_sessions.principal_of(session, token=token)
    except Unauthenticated as exc:
        raise SignInRequired from exc
    request.state.session_token = token
    return _authenticated(request, principal)


WebPrincipal = Annotated[Principal, Depends(web_principal)]


async def form(request: Request) -> dict[str, list[str]]:
    """A urlencoded form body, each field's values in order (forms are small)."""
    body = await request.body()
    if len(body) > MAX_FORM:
        raise Forbidden("the form is too large")
    fields: dict[str, list[str]] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        fields.setdefault(name, []).append(value)
    return fields


Form = Annotated[dict[str, list[str]], Depends(form)]


def one(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    values = fields.get(name)
    return values[0] if values else default


def check_csrf(request: Request, fields: Form) -> None:
    """403 unless the form carries this session's CSRF token."""
    token = request.cookies.get(COOKIE) or ""
    if not token or not web_sessions.csrf_matches(token, one(fields, "csrf") or None):
        raise Forbidden("the form's CSRF token is missing or wrong: reload the page")


Csrf = Depends(check_csrf)


def page(
    request: Request,
    template: str,
    principal: Principal | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page of the workbench, with what its layout needs (navigation, CSRF token)."""
    token = getattr(request.state, "session_token", None)
    html = templates.get_template(template).render(
        principal=principal,
        csrf=web_sessions.csrf_token(token) if token else "",
        may=(lambda action: principal is not None and allowed(principal, Action(action))),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)
