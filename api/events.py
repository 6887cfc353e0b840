"""The event feed and webhooks (contract §9)."""

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from api.deps import (
    PrincipalDep,
    SessionDep,
    StreamingPrincipalDep,
    get_database,
    get_settings,
    require_json,
)
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import Page
from schemas.events import DeliveryPublic, DeliveryStatus, EventPage, WebhookCreated, WebhookIn
from schemas.events import WebhookPublic as WebhookOut
from service.database import Database
from service.events import feed, secrets, webhooks
from service.events.wakeup import Wakeup
from service.settings import Settings

router = APIRouter(tags=["events"], responses=problem_responses(401, 403))

MAX_WAIT = 30
WebhookId = Annotated[str, Path(max_length=36, description="The webhook's id.")]
EventId = Annotated[str, Path(max_length=36, description="The event's id.")]


def get_wakeup(request: Request) -> Wakeup:
    wakeup: Wakeup = request.app.state.wakeup
    return wakeup


def secret_key(request: Request) -> bytes:
    """The server's key for webhook secrets, read (or made) on first use."""
    key: bytes | None = getattr(request.app.state, "secret_key", None)
    if key is None:
        key = request.app.state.secret_key = secrets.server_key(get_settings(request))
    return key


@router.get("/v1/events", responses=problem_responses(410, 422))
async def list_events(
    principal: StreamingPrincipalDep,
    database: Annotated[Database, Depends(get_database)],
    wakeup: Annotated[Wakeup, Depends(get_wakeup)],
    type: Annotated[list[str], Query(default_factory=list, max_length=20)],
    after: Cursor = None,
    limit: Limit = DEFAULT,
    survey: Annotated[str | None, Query(max_length=64)] = None,
    wait: Annotated[int, Query(ge=0, le=MAX_WAIT, description="Seconds to wait.")] = 0,
) -> EventPage:
    """The events after the cursor, oldest first, waiting up to `wait` seconds for one
    (reader: release events only; a site-bound key: its sites' and site-less events)."""
    deadline = time.monotonic() + wait
    while True:
        seen = wakeup.generation()
        items, next_cursor = await database.run(
            feed.read_feed,
            write=False,
            principal=principal,
            after=after,
            limit=limit,
            types=type,
            survey=survey,
        )
        remaining = deadline - time.monotonic()
        if items or remaining <= 0:
            return EventPage(items=items, next_cursor=next_cursor)
        after = next_cursor
        await wakeup.wait(seen, min(remaining, wakeup.poll_interval))


@router.post(
    "/v1/webhooks",
    status_code=201,
    dependencies=[Depends(require_json)],
    responses=problem_responses(415, 422),
)
def create_webhook(
    request: Request, data: WebhookIn, session: SessionDep, principal: PrincipalDep
) -> WebhookCreated:
    """Subscribe a URL to events; the secret is in this response only (reader, evaluator,
    admin)."""
    settings: Settings = get_settings(request)
    created = webhooks.create_webhook(
        session,
        principal=principal,
        data=data,
        key=secret_key(request),
        allow_private=settings.webhook_allow_private,
    )
    request.state.audit_target = created.id
    return created


@router.get("/v1/webhooks")
def list_webhooks(session: SessionDep, principal: PrincipalDep) -> list[WebhookOut]:
    """The caller's webhooks (an admin: every one), never a secret."""
    return webhooks.list_webhooks(session, principal=principal)


@router.delete("/v1/webhooks/{webhook_id}", status_code=204, responses=problem_responses(404))
def delete_webhook(webhook_id: WebhookId, session: SessionDep, principal: PrincipalDep) -> Response:
    """Delete a webhook; nothing more is sent to it."""
    webhooks.delete_webhook(session, principal=principal, webhook_id=webhook_id)
    return Response(status_code=204)


@router.get("/v1/webhooks/{webhook_id}/deliveries", responses=problem_responses(404, 422))
def list_deliveries(
    webhook_id: WebhookId,
    session: SessionDep,
    principal: PrincipalDep,
    status: DeliveryStatus | None = None,
    limit: Limit = DEFAULT,
    cursor: Cursor = None,
) -> Page[DeliveryPublic]:
    """A webhook's deliveries, oldest first, optionally of one status."""
    items, next_cursor = webhooks.list_deliveries(
        session,
        principal=principal,
        webhook_id=webhook_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)


@router.post(
    "/v1/webhooks/{webhook_id}/deliveries/{event_id}/retry",
    status_code=202,
    responses=problem_responses(404),
)
def retry_delivery(
    request: Request,
    webhook_id: WebhookId,
    event_id: EventId,
    session: SessionDep,
    principal: PrincipalDep,
) -> DeliveryPublic:
    """Queue a new attempt of one delivery now."""
    settings: Settings = get_settings(request)
    return webhooks.retry_delivery(
        session,
        principal=principal,
        webhook_id=webhook_id,
        event_id=event_id,
        schedule_length=len(settings.webhook_retry_schedule),
    )
