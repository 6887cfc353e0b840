"""The outbox: every change records its event in the transaction that makes it.

How the feed keeps commit order (the promise of contract §9). An id taken from a
sequence when a row is inserted does not follow commit order: a transaction that took
id 7 can commit after one that took id 8, and a reader who has already passed 8 never
sees 7. So an event gets its feed `position` only at the very end of its transaction:

- Services call `emit`, which buffers the event in the unit of work (large imports
  spill their buffer into the table early, with no position yet, so memory stays flat).
- Just before COMMIT (`service.database` runs `before_commit` callbacks there), on
  PostgreSQL the transaction takes one transaction-level advisory lock
  (`service.commit_order.take_turn`, shared with the narrow rows' sequence), then draws the
  positions of all its events from a sequence and writes them, then commits. The lock is
  released only after the commit has become visible (PostgreSQL releases a
  transaction's locks after it leaves the proc array), so a transaction that draws a
  higher position necessarily commits later, and by the time a reader can see position
  P, every position below P is already visible or will never exist (a rolled-back
  transaction leaves a gap, never a late arrival). The lock is held for a few inserts and
  the commit's WAL flush; group commit amortises it over a whole batch of submissions.
- On SQLite there is one writer at a time (write transactions begin IMMEDIATE), so the
  primary key, AUTOINCREMENT (never reused, even after pruning), is already in commit
  order: the position is set to it.

A reader following `position > cursor` therefore sees every event exactly once, in
commit order. `pg_notify` in the same transaction wakes long polls in every process
when (and only if) it commits.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text, update
from sqlmodel import Session, col

from schemas.base import utcnow
from schemas.events import Event, EventType
from schemas.responses import ResponsePublic
from service import bulk
from service.commit_order import postgres, take_turn
from service.database import after_commit, before_commit
from service.ids import new_id

NOTIFY_CHANNEL = "hearme_events"
SPILL = 1000  # buffered events written early (without a position) past this many

_EVENTS = Event.__table__  # type: ignore[attr-defined]
# A driver statement compiled once (`service.bulk`): a batch's events in one statement.
_INSERT = bulk.Insert(
    _EVENTS,
    (
        "id",
        "type",
        "survey_id",
        "site",
        "wave",
        "response_id",
        "occurred_at",
        "data",
        "position",
    ),
)
# PostgreSQL, when the transaction holds the turn and every event of it is still buffered:
# the events with their positions, and the notification, in one round trip.
_INSERT_NUMBERED = bulk.Insert(
    _EVENTS,
    _INSERT.columns[:-1],  # all but position, which is drawn per row
    computed={"position": "nextval('event_position_seq')"},
    suffix="RETURNING 1",
    wrap="WITH inserted AS ({}) SELECT pg_notify('" + NOTIFY_CHANNEL + "', '')",
)
_BUFFER = "hearme_events_buffer"

# PostgreSQL: positions for this transaction's own rows that have none yet (only its own
# uncommitted rows can lack one: every committed row got its position before committing).
_PG_POSITIONS = text(
    "UPDATE event SET position = numbered.position FROM ("
    " SELECT pk, nextval('event_position_seq') AS position FROM ("
    "  SELECT pk FROM event WHERE position IS NULL ORDER BY pk) AS ordered"
    ") AS numbered WHERE event.pk = numbered.pk"
)
_PG_POSITIONS_AND_NOTIFY = text(
    "WITH positioned AS (" + _PG_POSITIONS.text + " RETURNING 1) SELECT pg_notify(:channel, '')"
)
_SQLITE_POSITIONS = (
    update(_EVENTS).where(_EVENTS.c.position.is_(None)).values(position=_EVENTS.c.pk)
)

# Called after any transaction that recorded events commits (in that process): the long
# polls and webhook dispatcher of this process wake at once instead of at their next poll.
_listeners: list[Any] = []


def on_commit(listener: Any) -> None:
    """Register a callable run after each commit that recorded events in this process."""
    _listeners.append(listener)


def forget(listener: Any) -> None:
    _listeners.remove(listener)


@dataclass
class _Buffer:
    rows: list[dict[str, Any]] = field(default_factory=list)
    spilled: bool = False


def emit(
    session: Session,
    *,
    type: EventType | str,
    survey: str,
    data: dict[str, Any] | bulk.Json,
    site: str | None = None,
    wave: str | None = None,
    response_id: str | None = None,
) -> None:
    """Record an event of the change being made in this session's transaction: it
    exists if and only if the transaction commits. (`release.published` and
    `release.withdrawn` are recorded with this, `data={"id", "title"}`.)"""
    buffer = session.info.get(_BUFFER)
    if buffer is None:
        buffer = session.info[_BUFFER] = _Buffer()
        before_commit(session, _write)
        after_commit(session, notify_local)
    buffer.rows.append(
        {
            "id": new_id(),
            "type": str(type),
            "survey_id": survey,
            "site": site,
            "wave": wave,
            "response_id": response_id,
            "occurred_at": utcnow(),
            "data": data,
            "position": None,
        }
    )
    if len(buffer.rows) >= SPILL:
        _INSERT.execute(session, buffer.rows)
        buffer.rows = []
        buffer.spilled = True


def response_created(session: Session, responses: Iterable[ResponsePublic]) -> None:
    """One `response.created` per stored response, its data the 201 body (§5), serialised
    once by pydantic-core (the same JSON values `model_dump(mode="json")` gave)."""
    to_json = ResponsePublic.__pydantic_serializer__.to_json
    for response in responses:
        emit(
            session,
            type=EventType.response_created,
            survey=response.survey,
            site=response.site,
            wave=response.wave,
            response_id=response.id,
            data=bulk.Json(to_json(response).decode()),
        )


def _write(session: Session) -> None:
    """Before COMMIT: the events get their positions (see the module's docstring)."""
    buffer: _Buffer = session.info.pop(_BUFFER)
    on_postgres = postgres(session)
    take_turn(session)
    if on_postgres and buffer.rows and not buffer.spilled:
        _INSERT_NUMBERED.execute(session, buffer.rows)  # positions and notification too
        return
    if buffer.rows:
        _INSERT.execute(session, buffer.rows)
    if on_postgres:  # positions and the notification in one round trip
        session.execute(_PG_POSITIONS_AND_NOTIFY, {"channel": NOTIFY_CHANNEL})
    else:
        session.execute(_SQLITE_POSITIONS)


def notify_local() -> None:
    """Wake this process's listeners: after a commit that recorded events, here or in this
    process's submissions writer (`service.writer`)."""
    for listener in list(_listeners):
        listener()


_SCRUB = (
    update(_EVENTS)
    .where(
        col(Event.response_id) == bindparam("b_response_id"),
        col(Event.type) == EventType.response_created.value,
    )
    .values(data=bindparam("scrubbed"))
)


def scrub_response(session: Session, *, response_id: str) -> None:
    """An erased response's `response.created` keeps its place in the feed, but its data
    becomes `{"id", "erased": true}`. Deliveries read the event when they are sent, so
    pending ones carry the scrubbed body too."""
    session.execute(_SCRUB, {"b_response_id": response_id, "scrubbed": _scrubbed(response_id)})


def _scrubbed(response_id: str) -> dict[str, Any]:
    return {"id": response_id, "erased": True}
