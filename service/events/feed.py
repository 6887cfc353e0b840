"""The feed (contract §9): events after a cursor, oldest first, as a key may read them.

The cursor is the feed position of the last event handed out (`service.events.outbox`
explains why positions follow commit order). A page that comes back short moves the
cursor to the highest position committed when the page was read, past events that the
key may not see, so a filtered follower does not rescan them; that is safe because no
event can commit below a position already visible.
"""

from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, or_, select, tuple_, update
from sqlmodel import Session, col
from sqlmodel import select as select_model

from schemas.base import utcnow
from schemas.events import Event, EventPublic, EventRetention, EventType, WebhookDelivery
from schemas.keys import Role
from schemas.releases import Release
from service.errors import Gone, invalid_field
from service.keys import Principal
from service.pagination import decode_pk_cursor, encode_cursor
from service.permissions import Action, require

RELEASE_TYPES = (EventType.release_published.value, EventType.release_withdrawn.value)
PRUNE_BATCH = 1000


def to_public(event: Event) -> EventPublic:
    return EventPublic(
        id=event.id,
        type=event.type,
        survey=event.survey_id,
        site=event.site,
        wave=event.wave,
        occurred_at=event.occurred_at,
        data=event.data,
    )


Q = TypeVar("Q", bound="Select[*tuple[Any, ...]]")


def visible_to(
    session: Session, query: Q, *, role: Role, sites: frozenset[str] | None, types: list[str]
) -> Q:
    """What a key may read of the feed: a reader the `release.*` events only; a key
    bound to sites the events of its sites and those of no site, and of the releases
    only those it may read (`Release.visible_to_sites`: a release event names its
    release's title, which a key of other sites must not learn). Webhooks deliver
    exactly this for their owner."""
    if role == Role.reader:
        query = query.where(col(Event.type).in_(RELEASE_TYPES))
    if sites is not None:
        query = query.where(or_(col(Event.site).is_(None), col(Event.site).in_(sorted(sites))))
        seen = [
            (r.survey_id, r.id)
            for r in session.exec(select_model(Release))
            if r.visible_to_sites(sites)
        ]
        release_id = col(Event.data)["id"].as_string()
        query = query.where(
            or_(
                col(Event.type).not_in(RELEASE_TYPES),
                tuple_(col(Event.survey_id), release_id).in_(seen),
            )
        )
    if types and "*" not in types:
        query = query.where(col(Event.type).in_(types))
    return query


def last_position(session: Session) -> int:
    """The highest position committed (0 for an empty feed)."""
    return int(session.execute(select(func.coalesce(func.max(Event.position), 0))).scalar_one())


def check_types(types: list[str], loc: tuple[str | int, ...]) -> None:
    known = {t.value for t in EventType}
    for i, name in enumerate(types):
        if name != "*" and name not in known:
            raise invalid_field((*loc, i), f"unknown event type {name!r}")


def read_feed(
    session: Session,
    *,
    principal: Principal,
    after: str | None,
    limit: int,
    types: list[str],
    survey: str | None,
) -> tuple[list[EventPublic], str]:
    """One page of the feed after the cursor; the next cursor is never null."""
    require(principal, Action.read_events)
    check_types(types, ("query", "type"))
    position = decode_pk_cursor(after) if after is not None else 0
    assert position is not None
    pruned = session.get(EventRetention, 1)
    if after is not None and pruned is not None and position < pruned.pruned_through:
        raise Gone("this cursor is older than the events' retention: start again without one")
    # Read the high-water mark first: every position up to it is committed, so the page
    # below cannot miss one, and a short page may move the cursor to it.
    high = last_position(session)
    query = (
        select(Event)
        .where(col(Event.position) > position, col(Event.position) <= high)
        .order_by(col(Event.position))
        .limit(limit)
    )
    if survey is not None:
        query = query.where(col(Event.survey_id) == survey)
    query = visible_to(session, query, role=principal.role, sites=principal.sites, types=types)
    rows = list(session.execute(query).scalars())
    end = rows[-1].position if len(rows) == limit else max(high, position)
    assert end is not None
    return [to_public(r) for r in rows], encode_cursor(end)


def prune(session: Session, *, retention_days: int) -> int:
    """Delete one bounded batch of events older than the retention (and their
    deliveries), remembering how far the feed is pruned; returns how many went."""
    cutoff = utcnow() - timedelta(days=retention_days)
    rows = session.execute(
        select(col(Event.pk), col(Event.position))
        .where(col(Event.occurred_at) < cutoff)
        .order_by(col(Event.pk))
        .limit(PRUNE_BATCH)
    ).all()
    if not rows:
        return 0
    pks = [r.pk for r in rows]
    through = max(r.position or 0 for r in rows)
    session.execute(delete(WebhookDelivery).where(col(WebhookDelivery.event_pk).in_(pks)))
    session.execute(delete(Event).where(col(Event.pk).in_(pks)))
    if session.get(EventRetention, 1) is None:
        session.add(EventRetention(id=1, pruned_through=through))
        session.flush()
    else:
        session.execute(
            update(EventRetention)
            .where(col(EventRetention.id) == 1)
            .values(pruned_through=func.max(EventRetention.pruned_through, through))
            if session.get_bind().dialect.name == "sqlite"
            else update(EventRetention)
            .where(col(EventRetention.id) == 1)
            .values(pruned_through=func.greatest(EventRetention.pruned_through, through))
        )
    return len(rows)
