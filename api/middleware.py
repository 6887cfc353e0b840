"""Pure ASGI middleware (no BaseHTTPMiddleware: it costs a task per request).

`RequestContext` gives each request an id, logs one line when it ends, records metrics,
and caps the body: `max_body` for JSON, `max_import` for imports (contract §5).
"""

import logging
import re
import time
import uuid
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import request_id_var
from api.problems import problem_response

log = logging.getLogger("hearme.access")

REQUESTS = Counter(
    "hearme_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "hearme_http_request_duration_seconds",
    "HTTP request latency by route",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
IMPORT_SUFFIX = "/responses:import"
# Uploads that may be as large as an import: a coded project from a QDA tool.
IMPORT_SUFFIXES = (IMPORT_SUFFIX, "/import.qdpx")


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit} bytes")


def _metric_children(method: str, route: str, status: int) -> tuple[Any, Any]:
    """The counter's and the histogram's children for these labels, looked up once per
    method, route and status (`labels()` joins and checks its labels on every call)."""
    children = _CHILDREN.get((method, route, status))
    if children is None:
        children = (REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route))
        _CHILDREN[(method, route, status)] = children
    return children


_CHILDREN: dict[tuple[str, str, int], tuple[Any, Any]] = {}


def _access_line(scope: Scope, template: str, status: int, elapsed: float) -> None:
    """The access log line. The record is made directly, not by `log.info`, which walks
    the stack for the caller's file and line on every request (the JSON line carries
    neither); its fields are those `log.info(..., extra=...)` gave."""
    if not log.isEnabledFor(logging.INFO):
        return
    extra = {
        "method": scope["method"],
        "route": template,
        "status": status,
        "duration_ms": round(elapsed * 1000, 2),
        "key": scope.get("state", {}).get("key_name"),
    }
    log.handle(
        log.makeRecord(log.name, logging.INFO, __file__, 0, "request", (), None, extra=extra)
    )


class RequestContext:
    def __init__(self, app: ASGIApp, *, max_body: int, max_import: int) -> None:
        self.app = app
        self.max_body = max_body
        self.max_import = max_import

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = ""
        declared: bytes | None = None
        for name, value in scope["headers"]:  # the last of a repeated header, as dict() kept
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
            elif name == b"content-length":
                declared = value
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        limit = self.max_import if scope["path"].endswith(IMPORT_SUFFIXES) else self.max_body

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            if declared is not None and declared.isdigit() and int(declared) > limit:
                await problem_response(413, BodyTooLarge(limit).detail)(
                    scope, receive, send_with_id
                )
                return
            await self.app(scope, _limited(receive, limit), send_with_id)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            counter, histogram = _metric_children(scope["method"], template, status)
            counter.inc()
            histogram.observe(elapsed)
            _access_line(scope, template, status, elapsed)
            request_id_var.reset(token)


def _limited(receive: Receive, limit: int) -> Receive:
    """Counts a streamed body and raises 413 as soon as it passes the limit."""
    received = 0

    async def wrapped() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return wrapped
