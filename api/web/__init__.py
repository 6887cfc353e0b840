"""The evaluators' workbench (/app): server-rendered pages, one more front door beside the
routers and the CLI. Pages call the same services as the routers with the principal of
a browser session (`api.web.session`); they hold no rules of their own."""

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.web import coding, dashboard, pages
from api.web.session import SignInRequired, page, sign_in_required
from service.errors import DomainError, Invalid

STATIC = Path(__file__).parent / "static"
PREFIX = "/app"


def _for_pages(app: FastAPI, kind: type[Exception]) -> None:
    """On /app, the problem of `kind` as an HTML page with the same status; elsewhere
    the API's problem+json, unchanged."""
    api_handler: Any = app.exception_handlers[kind]

    async def handler(request: Request, exc: Exception) -> Response:
        answer: Response = await api_handler(request, exc)
        if not request.url.path.startswith(PREFIX + "/"):
            return answer
        detail = getattr(exc, "detail", str(exc))
        errors = exc.errors if isinstance(exc, Invalid) else []
        html = page(
            request,
            "error.html",
            None,
            status_code=answer.status_code,
            title=f"Error {answer.status_code}",
            detail=detail,
            errors=errors,
        )
        for name in ("retry-after", "allow"):
            if name in answer.headers:
                html.headers[name] = answer.headers[name]
        return html

    app.add_exception_handler(kind, handler)


def install(app: FastAPI) -> None:
    for module in (pages, dashboard, coding):
        app.include_router(module.router)
    app.mount(PREFIX + "/static", StaticFiles(directory=STATIC), name="web_static")
    app.add_exception_handler(SignInRequired, sign_in_required)
    _for_pages(app, DomainError)
    _for_pages(app, StarletteHTTPException)
