"""Lean routes: the hot path served without FastAPI's per-request machinery, keeping
everything a client or the OpenAPI document sees.

A route declared as usual with `@router.post(...)` stays the source of the OpenAPI
document (the committed document is compared with the served one), but FastAPI's request
handler solves its dependency tree, opens two exit stacks and re-validates the answer on
every call: on `POST .../responses` that was a tenth of a submission's CPU. A `LeanRoute`
is placed first in the app's router for the same path and method, so it is the one that
serves; its endpoint does the same steps in the same order as FastAPI would, with
FastAPI's own parsing and validation functions (so every status, error and `loc` is what
the declared route gave), and nothing else:

1. read the body and decode it as JSON when its media type is JSON (a decoding error is a
   422 `json_invalid` before anything else; an undecodable body FastAPI's 400);
2. the route's dependencies in their declared order (the endpoint calls them);
3. the path parameters, then the body, validated against the declared route's fields;
   their errors together in one 422.

Exceptions travel as on any route, through the app's exception handlers (`api/problems.py`),
and the middleware (request id, access log, limits, audit, security headers) wraps it as
it wraps every route.

`LeanPath` takes a lean route's requests straight from our middleware to the route: the
innermost of the app's own middleware, it hands a request that a lean route matches fully
to that route's ASGI app (Starlette's `request_response`, which maps its exceptions with
the app's handlers), skipping the layers in between that such a request never needs:
Starlette's exception middleware (a second Request and exception wrapper: the route maps
its own), FastAPI's per-request exit stack (for uploaded files: a JSON route has none) and
the router's walk. Every other request, a lean path with another method included (the
router's 405), goes down the usual stack.
"""

import email.message
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

UNPARSEABLE = "There was an error parsing the body"  # FastAPI's words (see api/problems.py)

Endpoint = Callable[[Request, "Declared"], Awaitable[Response]]


class Declared:
    """The declared route's fields, and FastAPI's validation of them."""

    def __init__(self, route: Any) -> None:  # an APIRoute as included (a RouteContext)
        self.path_fields = _path_fields(route.dependant)
        self.body_fields = route.dependant.body_params
        self.embed_body = bool(getattr(route, "_embed_body_fields", False))

    def path_errors(self, request: Request) -> list[Any]:
        _, errors = request_params_to_args(self.path_fields, request.path_params)
        return errors

    async def body(self, body: Any) -> tuple[Any, list[Any]]:
        """The body's value, validated as FastAPI validates it, and its errors."""
        values, errors = await request_body_to_args(self.body_fields, body, self.embed_body)
        return values.get(self.body_fields[0].name), errors


def _path_fields(dependant: Dependant) -> list[Any]:
    """Every path parameter of the dependency tree, in the order FastAPI checks them."""
    fields = [f for sub in dependant.dependencies for f in _path_fields(sub)]
    return fields + list(dependant.path_params)


async def json_body(request: Request) -> Any:
    """The body as FastAPI's request handler reads it for a JSON body parameter: decoded
    when the media type is application/json or +json, the raw bytes otherwise, None when
    empty (FastAPI's `Undefined`: the body is then "missing")."""
    raw = await request.body()
    if not raw:
        return None
    content_type = request.headers.get("content-type")
    if not content_type:
        return raw
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    if message.get_content_maintype() != "application" or not (
        subtype == "json" or subtype.endswith("+json")
    ):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", exc.pos),
                    "msg": "JSON decode error",
                    "input": {},
                    "ctx": {"error": exc.msg},
                }
            ],
            body=exc.doc,
        ) from exc
    except Exception as exc:  # bad UTF-8, nesting too deep: FastAPI's 400
        raise HTTPException(status_code=400, detail=UNPARSEABLE) from exc


class LeanRoute(Route):
    """Serves one declared route's path and method with `endpoint(request, declared)`;
    named like it, so the access log, metrics and audit trail see the same route."""

    def __init__(self, declared: Any, endpoint: Endpoint) -> None:
        fields = Declared(declared)

        async def serve(request: Request) -> Response:
            return await endpoint(request, fields)

        super().__init__(declared.path, serve, methods=list(declared.methods), name=declared.name)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def serve_lean(app: FastAPI, name: str, endpoint: Endpoint) -> None:
    """Serve the declared route `name` (its operation id) with `endpoint`, first in the
    app's router."""
    declared = next(
        r
        for r in iter_route_contexts(app.routes)
        if r.name == name and isinstance(r.original_route, APIRoute)
    )
    app.router.routes.insert(0, LeanRoute(declared, endpoint))


class LeanPath:
    """ASGI middleware: a request that a lean route of `app` matches goes straight to it
    (see the module's docstring); install it as the innermost of the app's middleware."""

    def __init__(self, app: ASGIApp, *, fastapi: FastAPI) -> None:
        self.app = app
        self.fastapi = fastapi
        self._handlers: tuple[Any, Any] | None = None

    def _exception_handlers(self) -> tuple[Any, Any]:
        """The handlers Starlette's exception middleware gives the routes below it (the
        middleware stack is built at the first request, before this is called)."""
        if self._handlers is None:
            inner: Any = self.app
            while not isinstance(inner, ExceptionMiddleware):
                inner = inner.app
            self._handlers = (inner._exception_handlers, inner._status_handlers)
        return self._handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            router = self.fastapi.router
            for route in router.routes:
                if not isinstance(route, LeanRoute):
                    break  # lean routes come first (`serve_lean`)
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["starlette.exception_handlers"] = self._exception_handlers()
                    scope.setdefault("router", router)
                    scope.update(child)
                    await route.app(scope, receive, send)
                    return
        await self.app(scope, receive, send)
