"""The one place where errors become RFC 9457 problem+json responses (contract §1)."""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.status import HTTP_422_UNPROCESSABLE_CONTENT

from schemas.problems import Problem
from service.database import storage_full, unreachable
from service.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    StorageFull,
    TooLarge,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger("hearme.errors")

PROBLEM_JSON = "application/problem+json"
FASTAPI_422 = "#/components/schemas/HTTPValidationError"
FASTAPI_UNPARSEABLE_BODY = "There was an error parsing the body"

STATUS_OF: dict[type[DomainError], int] = {
    NotFound: 404,
    Unauthenticated: 401,
    Forbidden: 403,
    Conflict: 409,
    Gone: 410,
    Invalid: 422,
    TooLarge: 413,
    Unavailable: 503,
    StorageFull: 507,
}

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Validation failed",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
    507: "Insufficient storage",
}

# Problems any /v1 operation may answer whatever it does, declared on each (contract §11):
# a rate limit, and the database being unreachable.
EVERY_OPERATION = (429, 503)
# Problems of operations that take a body or write: over HEARME_MAX_BODY, and a full disk.
WITH_A_BODY = (413,)
WRITING = (507,)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def problem_response(
    status: int,
    detail: str | None,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    title = TITLES.get(status, "Error")
    body = {
        "type": f"urn:hearme:problem:{title.lower().replace(' ', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors is not None or status == 422:
        body["errors"] = errors or []
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route: each error it may answer, documented as a Problem."""
    return {s: {"model": Problem, "description": TITLES[s]} for s in statuses}


RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    }
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
RETRY_AFTER_SECONDS = 2  # a database outage: when to try again


def declare_common_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add to every /v1 operation of the document the problems that do not depend on what
    it does (429 and 503 with Retry-After; 413 where it reads a body, 507 where it writes),
    so the document lists every status an operation can answer (contract §11)."""
    for path, item in schema.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in item.items():
            statuses = list(EVERY_OPERATION)
            if "requestBody" in operation:
                statuses += WITH_A_BODY
            if method.upper() in WRITE_METHODS:
                statuses += WRITING
            responses = operation.setdefault("responses", {})
            for status in statuses:
                response: dict[str, Any] = {
                    "description": TITLES[status],
                    "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
                }
                if status in (429, 503):
                    response["headers"] = RETRY_AFTER
                responses.setdefault(str(status), response)
    return schema


@dataclass(frozen=True)
class PathMethods:
    """The methods served at one path template, whichever route serves each."""

    pattern: re.Pattern[str]
    methods: frozenset[str]


def path_methods(app: FastAPI) -> list[PathMethods]:
    """Starlette's own 405 names only the methods of the first route whose path matched,
    and FastAPI has one route per method: gather them per path, once, at start."""
    by_path: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.routes):
        if route.path is not None:
            by_path.setdefault(route.path, set()).update(route.methods or ())
    return [PathMethods(compile_path(p)[0], frozenset(m)) for p, m in by_path.items()]


def allowed_methods(table: list[PathMethods], path: str) -> list[str]:
    return sorted({m for entry in table if entry.pattern.match(path) for m in entry.methods})


def document_problems_as_problem_json(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a response `model` as application/json; errors are served as
    application/problem+json, so the document says so."""
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.isdigit() and int(status) >= 400 and "application/json" in content:
                    media = content["application/json"]
                    if media.get("schema") == {"$ref": FASTAPI_422}:
                        # FastAPI's own 422 shape; ours is a Problem (see validation_error).
                        media = {"schema": {"$ref": "#/components/schemas/Problem"}}
                    response["content"] = {PROBLEM_JSON: media}
    if FASTAPI_422 not in str(schema.get("paths")):
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
    return schema


def _without_union_tags(loc: list[Any], body: Any) -> list[Any]:
    """The path of `loc` in the body: pydantic adds the tag of a discriminated union after
    the item's index (["questions", 0, "choice", "options"]); the body has no such step."""
    path: list[Any] = []
    node, after_index = body, False
    for part in loc:
        if after_index and isinstance(node, dict) and node.get("type") == part:
            after_index = False
            continue
        path.append(part)
        after_index = isinstance(part, int)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return path


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    errors = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            position = loc[1] if len(loc) > 1 else "?"
            error = err.get("ctx", {}).get("error", "invalid JSON")
            errors.append(
                {"loc": ["body"], "msg": f"{error} at byte {position}", "type": "json_invalid"}
            )
            continue
        if loc[:1] == ["body"] and len(loc) > 1:
            loc = loc[1:]  # contract §1 names fields by their path in the body
            loc = _without_union_tags(loc, exc.body)
        if err.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(str(err.get("ctx", {}).get("discriminator", "type")).strip("'"))
        errors.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type")})
    return errors


def install(app: FastAPI) -> None:
    async def domain_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        status = next(s for cls, s in STATUS_OF.items() if isinstance(exc, cls))
        errors = None
        if isinstance(exc, Invalid):
            errors = [{"loc": list(e.loc), "msg": e.msg, "type": e.type} for e in exc.errors]
        headers = None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        elif status == 503:
            headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        return problem_response(status, exc.detail, errors=errors, headers=headers)

    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            HTTP_422_UNPROCESSABLE_CONTENT, "the request is not valid", errors=_field_errors(exc)
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == FASTAPI_UNPARSEABLE_BODY:
            # FastAPI's answer to a body json cannot decode (bad UTF-8, nesting too deep).
            error = {
                "loc": ["body"],
                "msg": "the body is not valid UTF-8 JSON",
                "type": "json_invalid",
            }
            return problem_response(422, "the request body cannot be parsed", errors=[error])
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            table = request.app.state.path_methods
            headers["Allow"] = ", ".join(allowed_methods(table, request.url.path))
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    async def database_error(_: Request, exc: Exception) -> JSONResponse:
        """Contract §11: an unreachable database is a 503 to retry, a full disk a 507; the
        transaction was rolled back either way, so nothing acknowledged is lost."""
        if storage_full(exc):
            log.error("storage full", extra={"error_type": type(exc).__name__})
            return problem_response(507, "the database has no room left; nothing was stored")
        if unreachable(exc):
            log.warning("database unavailable", extra={"error_type": type(exc).__name__})
            return problem_response(
                503,
                "the database cannot be reached or did not answer in time; try again shortly",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return await unexpected(_, exc)

    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", extra={"error_type": type(exc).__name__})
        return problem_response(500, "an unexpected error occurred")

    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(SQLAlchemyError, database_error)
    app.add_exception_handler(Exception, unexpected)
