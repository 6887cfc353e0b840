"""Which requests are audited, and the middleware that records them (contract §11).

`AUDITED` is the one declaration: operation (the route function's name, which is also its
operation id) -> the action and the path parameter naming its target. A route whose
target is only known once it ran (the id of a new response, the name of a new key) sets
`request.state.audit_target` (and `audit_survey` where the survey is in the body).

The record is written when the status is known, in a short transaction of its own taken
with the request's database turn, *before* the response goes out: no answer leaves
without its record. If the record cannot be written, a successful read is refused with a
503 rather than delivered unrecorded; a write that was committed still answers (the
error is logged). Requests that failed (401, 403, 404, 422, ...) are recorded too, with
their status: attempts are part of who tried to read what.
"""

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import READ_METHODS
from api.logs import request_id_var
from api.problems import RETRY_AFTER_SECONDS, problem_response
from service import audit
from service.audit import Action, Entry
from service.database import Database
from service.settings import Settings

log = logging.getLogger("hearme.audit")

PRUNE_EVERY = 3600.0  # seconds between two prunings of old records, per process


@dataclass(frozen=True)
class Audited:
    action: Action
    target: str | None = None  # the path parameter that names what was acted on


AUDITED: dict[str, Audited] = {
    "create_survey": Audited(Action.survey_create),
    "replace_survey": Audited(Action.survey_replace),
    "submit_response": Audited(Action.response_submit),
    "import_responses": Audited(Action.response_import),
    "list_responses": Audited(Action.response_list),
    "get_response": Audited(Action.response_read, "response_id"),
    "erase_response": Audited(Action.response_erase, "response_id"),
    "put_codebook": Audited(Action.codebook_write, "question"),
    "import_codebook_qdc": Audited(Action.codebook_import, "question"),
    "get_codings": Audited(Action.coding_read, "response_id"),
    "put_coding": Audited(Action.coding_write, "response_id"),
    "put_consensus": Audited(Action.consensus_write, "response_id"),
    "delete_consensus": Audited(Action.consensus_delete, "response_id"),
    "get_suggestions": Audited(Action.suggestions_read, "response_id"),
    "coding_queue": Audited(Action.queue_read, "question"),
    "coder_discrepancies": Audited(Action.discrepancies_read, "question"),
    "export_project_qdpx": Audited(Action.project_export, "question"),
    "import_project_qdpx": Audited(Action.project_import, "question"),
    "export_responses": Audited(Action.export_read),
    "list_events": Audited(Action.events_read),
    "create_webhook": Audited(Action.webhook_create),
    "delete_webhook": Audited(Action.webhook_delete, "webhook_id"),
    "retry_delivery": Audited(Action.webhook_retry, "webhook_id"),
    "publish_release": Audited(Action.release_publish),
    "withdraw_release": Audited(Action.release_withdraw, "release"),
    "create_key": Audited(Action.key_create),
    "revoke_key": Audited(Action.key_revoke, "name"),
    "list_audit": Audited(Action.audit_read),
    # The workbench's pages (api/web), for what the API would record of the same acts.
    "web_sign_in": Audited(Action.session_sign_in),
    "web_sign_out": Audited(Action.session_sign_out),
    "web_code": Audited(Action.queue_read, "question"),
    "web_code_save": Audited(Action.coding_write),
    "web_review": Audited(Action.discrepancies_read, "question"),
    "web_consensus": Audited(Action.consensus_write),
    "web_export": Audited(Action.export_read),
    "web_publish": Audited(Action.release_publish),
}


class AuditTrail:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._last_prune: float | None = None  # at the first audited request, then hourly

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = False
        recorded = False

        async def send_recorded(message: Message) -> None:
            nonlocal refused, recorded
            if message["type"] == "http.response.start" and not recorded:
                recorded = True
                written = await self._record(scope, message["status"])
                if not written and message["status"] < 400 and scope["method"] in READ_METHODS:
                    refused = True
                    unavailable = problem_response(
                        503,
                        "the audit log cannot be written; nothing was read",
                        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
                    )
                    await unavailable({**scope}, receive, send)
                    return
            if refused:
                return  # the refused answer's own start and body are dropped
            await send(message)

        try:
            await self.app(scope, receive, send_recorded)
        except BaseException:
            if not recorded:
                recorded = True
                await self._record(scope, 500)
            raise

    async def _record(self, scope: Scope, status: int) -> bool:
        """Write the record if this operation is audited; False if it could not be."""
        route = scope.get("route")
        audited = AUDITED.get(getattr(route, "name", ""))
        if audited is None or scope["method"] not in (getattr(route, "methods", None) or ()):
            return True  # not audited, or a 405 (the router names the path's first route)
        state: dict[str, Any] = scope.get("state", {})
        if state.get("audit_recorded"):
            return True  # written in the request's own unit of work (group commit)
        params: dict[str, Any] = scope.get("path_params", {})
        target = state.get("audit_target")
        if target is None and audited.target is not None:
            target = params.get(audited.target)
        entry = Entry(
            action=audited.action,
            status=status,
            principal=state.get("principal"),
            survey=state.get("audit_survey") or params.get("survey"),
            target=None if target is None else str(target),
            request_id=request_id_var.get(None),
        )
        app_state = scope["app"].state
        database: Database = app_state.database
        settings: Settings = app_state.settings
        prune = self._last_prune is None or time.monotonic() - self._last_prune > PRUNE_EVERY
        try:
            async with database.turn(write=True):
                await run_in_threadpool(self._write, database, entry, settings, prune)
        except SQLAlchemyError as exc:
            log.error(
                "audit record not written",
                extra={"action": entry.action.value, "error_type": type(exc).__name__},
            )
            return False
        if prune:
            self._last_prune = time.monotonic()
        return True

    @staticmethod
    def _write(database: Database, entry: Entry, settings: Settings, prune: bool) -> None:
        with database.session(write=True) as session:
            audit.record(session, entry)
            if prune:
                audit.prune(session, retention_days=settings.audit_retention_days)
