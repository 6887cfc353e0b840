"""The application factory: the CLI, the tests and the OpenAPI script all build the app
here, each with its own settings."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from api import (
    agreement,
    audit,
    codebooks,
    codings,
    events,
    exports,
    keys,
    ops,
    problems,
    refi,
    releases,
    reports,
    responses,
    stats,
    suggestions,
    surveys,
)
from api.audit_trail import AuditTrail
from api.lean import LeanPath, serve_lean
from api.limits import RateLimits
from api.middleware import RequestContext
from api.security import SecurityHeaders
from api.web import install as install_web
from service.database import Database
from service.events.delivery import Dispatcher
from service.events.retention import keep_pruning
from service.events.wakeup import Wakeup
from service.settings import Settings, get_settings
from service.submissions import GroupCommit
from service.writer import WriterProcess

DESCRIPTION = """Survey backend for multi-site evaluations of child-protection practice:
validated submissions per site and wave, thematic coding of open answers, and aggregated
statistics with small cells suppressed for outside readers."""


def _operation_id(route: APIRoute) -> str:
    """Stable operation ids (the OpenAPI document is committed): the function's name."""
    return route.name


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    settings = settings or get_settings()
    database = database or Database(settings)

    wakeup = Wakeup(settings.database_url)

    group_commit = GroupCommit(database)
    writer_process = None
    if settings.submit_writer == "process":
        writer_process = WriterProcess(settings, [sys.executable, "-m", "api.writer"])
        group_commit.store = writer_process.store

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        wakeup.start()
        if writer_process is not None:
            writer_process.start()
        # Every process prunes the feed; only dispatching ones deliver webhooks.
        tasks = [
            asyncio.ensure_future(
                keep_pruning(database, retention_days=settings.event_retention_days)
            )
        ]
        if settings.webhook_dispatch:
            tasks.append(asyncio.ensure_future(Dispatcher(database, settings, wakeup).run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if writer_process is not None:
                await asyncio.to_thread(writer_process.stop)
            wakeup.stop()
            database.dispose()

    app = FastAPI(
        title="hearme",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=_operation_id,
        # hearme exports its own Prometheus metrics and configures no OpenTelemetry:
        # FastAPI's native telemetry would only look for a provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.database = database
    app.state.group_commit = group_commit
    app.state.rate_limits = RateLimits(settings)
    app.state.wakeup = wakeup
    problems.install(app)
    routers = (
        surveys,
        responses,
        stats,
        releases,
        codebooks,
        codings,
        suggestions,
        agreement,
        refi,
        exports,
        reports,
        events,
        keys,
        audit,
        ops,
    )
    for module in routers:
        app.include_router(module.router)
    # The hot path, served lean (api/lean.py) and documented by its declared route.
    serve_lean(app, "submit_response", responses.serve_submit)
    install_web(app)  # the workbench's pages at /app (api/web)
    app.state.path_methods = problems.path_methods(app)
    # Innermost of ours: lean routes' requests skip the layers below (api/lean.py).
    app.add_middleware(LeanPath, fastapi=app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(AuditTrail)  # inside RequestContext: it needs the request id
    app.add_middleware(RequestContext, max_body=settings.max_body, max_import=settings.max_import)
    app.add_middleware(SecurityHeaders)  # outermost: on every answer, the middleware's too

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = problems.document_problems_as_problem_json(FastAPI.openapi(app))
            app.openapi_schema = problems.declare_common_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
