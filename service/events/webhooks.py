"""Webhook subscriptions (contract §9): create, list, delete; their deliveries and the
retry of one. Sending is `service.events.delivery`.

A webhook belongs to the key that created it and delivers what that key could read from
the feed (`feed.visible_to`), from its creation on: its cursor starts at the highest
position committed when it is created. Only its owner sees it, or an admin.
"""

from sqlalchemy import select
from sqlmodel import Session, col

from schemas.base import utcnow
from schemas.events import (
    DeliveryPublic,
    DeliveryStatus,
    Webhook,
    WebhookCreated,
    WebhookDelivery,
    WebhookIn,
    WebhookPublic,
)
from schemas.keys import ApiKey, Role
from service.errors import NotFound
from service.events import feed, secrets, ssrf
from service.ids import new_id
from service.keys import Principal
from service.pagination import decode_pk_cursor, encode_cursor
from service.permissions import Action, require


def _public(webhook: Webhook, owner: str) -> WebhookPublic:
    return WebhookPublic(
        id=webhook.id,
        url=webhook.url,
        events=webhook.events,
        owner=owner,
        created_at=webhook.created_at,
    )


def create_webhook(
    session: Session, *, principal: Principal, data: WebhookIn, key: bytes, allow_private: bool
) -> WebhookCreated:
    require(principal, Action.manage_webhooks)
    feed.check_types(data.events, ("events",))
    ssrf.check_url(data.url, allow_private=allow_private)
    webhook = Webhook(
        id=new_id(),
        url=data.url,
        events=sorted(set(data.events)),
        owner_key_id=principal.key_id,
        secret_nonce=secrets.new_nonce(),
        cursor=feed.last_position(session),
    )
    session.add(webhook)
    session.flush()
    return WebhookCreated(
        **_public(webhook, principal.name).model_dump(),
        secret=secrets.webhook_secret(key, webhook.secret_nonce),
    )


def list_webhooks(session: Session, *, principal: Principal) -> list[WebhookPublic]:
    require(principal, Action.manage_webhooks)
    query = (
        select(Webhook, col(ApiKey.name))
        .join(ApiKey, col(ApiKey.id) == col(Webhook.owner_key_id))
        .order_by(col(Webhook.pk))
    )
    if principal.role != Role.admin:
        query = query.where(col(Webhook.owner_key_id) == principal.key_id)
    return [_public(w, owner) for w, owner in session.execute(query).all()]


def _own_webhook(session: Session, principal: Principal, webhook_id: str) -> Webhook:
    """The webhook, if the key owns it (or is an admin); 404 otherwise, so another key's
    webhooks cannot even be told to exist."""
    require(principal, Action.manage_webhooks)
    webhook: Webhook | None = session.execute(
        select(Webhook).where(col(Webhook.id) == webhook_id)
    ).scalar()
    if webhook is None or (
        principal.role != Role.admin and webhook.owner_key_id != principal.key_id
    ):
        raise NotFound("no such webhook")
    return webhook


def delete_webhook(session: Session, *, principal: Principal, webhook_id: str) -> None:
    """Delete a webhook; its pending deliveries go with it."""
    session.delete(_own_webhook(session, principal, webhook_id))
    session.flush()


def list_deliveries(
    session: Session,
    *,
    principal: Principal,
    webhook_id: str,
    status: DeliveryStatus | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[DeliveryPublic], str | None]:
    """A webhook's deliveries, oldest event first."""
    webhook = _own_webhook(session, principal, webhook_id)
    after = decode_pk_cursor(cursor)
    query = (
        select(WebhookDelivery)
        .where(col(WebhookDelivery.webhook_pk) == webhook.pk)
        .order_by(col(WebhookDelivery.pk))
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(col(WebhookDelivery.status) == status.value)
    if after is not None:
        query = query.where(col(WebhookDelivery.pk) > after)
    rows = list(session.execute(query).scalars())
    next_cursor = encode_cursor(rows[limit - 1].pk) if len(rows) > limit else None
    return [_delivery_public(r) for r in rows[:limit]], next_cursor


def _delivery_public(row: WebhookDelivery) -> DeliveryPublic:
    pending = row.status == DeliveryStatus.pending.value
    return DeliveryPublic(
        event_id=row.event_id,
        status=DeliveryStatus(row.status),
        attempts=row.attempts,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        next_attempt_at=row.next_attempt_at if pending else None,
        delivered_at=row.delivered_at,
    )


def retry_delivery(
    session: Session,
    *,
    principal: Principal,
    webhook_id: str,
    event_id: str,
    schedule_length: int,
) -> DeliveryPublic:
    """Queue one new attempt now. Should it fail, the delivery is `failed` again at
    once (the retry schedule was spent already, or is not wanted for a manual retry);
    a pending delivery is simply brought forward."""
    webhook = _own_webhook(session, principal, webhook_id)
    row = session.execute(
        select(WebhookDelivery)
        .where(
            col(WebhookDelivery.webhook_pk) == webhook.pk,
            col(WebhookDelivery.event_id) == event_id,
        )
        .with_for_update()
    ).scalar()
    if row is None:
        raise NotFound("this webhook has no delivery of that event")
    if row.status != DeliveryStatus.pending.value:
        row.status = DeliveryStatus.pending.value
        row.step = schedule_length
    row.next_attempt_at = utcnow()
    session.add(row)
    session.flush()
    return _delivery_public(row)
