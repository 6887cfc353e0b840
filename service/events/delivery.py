"""Webhook delivery (contract §9), run by the delivery process of each `hearme serve`
(`api.deliverer`: beside the workers, not in them), by `hearme deliver`, or by an app
built with `HEARME_WEBHOOK_DISPATCH=true` (the tests').

Each of them runs one `Dispatcher` task in its event loop. A turn of it:

1. **Fan-out.** For each webhook whose owner key is not revoked and whose cursor is
   behind the feed, the events past its cursor that its owner may read
   (`feed.visible_to`) and that it subscribes to become `pending` delivery rows, and the
   cursor moves on. The events are read and the rows and bodies built in a read
   transaction (`plan_fan_out`); the write transaction then moves each cursor only if it
   is still where the plan read it (compare and set), and inserts that webhook's rows
   (`apply_fan_out`). Two processes that plan the same events therefore queue them once
   (a unique key on webhook and event backs that up), and on SQLite the write lock, which
   the submissions wait for, is held for the writes alone (building the rows under it
   held it for a tenth of the time under load: submissions lost as much). Fan-out reads
   the feed, so it meets every event once, in commit order, and the submit path pays
   nothing for webhooks (no rows are written there per webhook).
2. **Claim.** Due pending deliveries are selected `FOR UPDATE SKIP LOCKED` (PostgreSQL;
   on SQLite the claim runs inside the one write transaction, so no two dispatchers can
   claim one row) and claimed by counting the attempt and moving `next_attempt_at` past a
   lease (the time-out and a margin), in a transaction that commits before anything is
   sent. Another process therefore sees the row as not due: one attempt is sent once. If
   the claiming process dies mid-attempt, the lease runs out and the delivery is tried
   again (delivery is at least once; receivers dedupe by `webhook-id`), which is also how
   deliveries survive restarts: they are rows, not memory. The first attempts of the
   deliveries a fan-out queues are claimed by the fan-out itself, as far as the limits
   below leave room: inserted already leased, in the same transaction, with their bodies
   from the events it just read (no second select, event read and update per delivery).
3. **Send.** Each claimed attempt is a task: the URL's host is resolved and checked
   (`ssrf`), the request goes to the checked address, signed per Standard Webhooks with
   the `standardwebhooks` package, sent by `service.events.http` (keep-alive, redirects
   not followed, the response read only up to a bound), the whole attempt bounded by
   `HEARME_WEBHOOK_TIMEOUT`. At most `MAX_IN_FLIGHT` attempts run per process and
   `PER_WEBHOOK` per webhook, so a slow or dead receiver holds a few slots, never the
   others' and never a submission's (sends hold no database connection). Claimed
   attempts beyond those wait in memory, as many as the receiver's recent speed sends
   well within the lease (`MAX_AHEAD`), so one turn can claim thousands for a fast one.
4. **Record.** Results are written with the next turn's fan-out and claim (one write
   transaction per turn, turns at least `BATCH_DELAY` apart while busy, on SQLite
   `SQLITE_BATCH_DELAY`, and `COALESCE` after a wake from idle; all of them by one
   driver statement, each row found by its primary key): `delivered`; or, after
   a failure, the next delay of the retry schedule (jittered by up to 10% either way);
   or `failed` once the schedule is spent. A result only lands if the row is still at the
   attempt it reports (a lapsed lease's late answer changes nothing).

The body is the event as the feed shows it when the attempt is claimed: an erased
response's event is already scrubbed for every attempt claimed after the erasure.
"""

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Text, cast, exists, select, update
from sqlmodel import Session, col
from standardwebhooks.webhooks import Webhook as Signer

from schemas.base import utcnow
from schemas.events import DeliveryStatus, Event, EventType, Webhook, WebhookDelivery
from schemas.keys import ApiKey, Role
from schemas.responses import Response
from service import bulk
from service.database import Database
from service.events import feed, http, secrets, ssrf
from service.events.wakeup import Wakeup
from service.settings import Settings

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 128
PER_WEBHOOK = 32
# A process may hold more claimed attempts than it has in flight, queued in memory, so
# that a fast receiver is not held to PER_WEBHOOK attempts per turn (at 10 turns a
# second that was 320 deliveries a second, less than SQLite's submissions: the backlog
# and the latency grew). How many a webhook may hold follows its receiver's speed: what
# PER_WEBHOOK parallel attempts of its recent duration send within AHEAD_BUDGET seconds,
# at least PER_WEBHOOK, at most MAX_AHEAD; MAX_HELD for the whole process. An attempt
# still queued when its lease has less than the time-out left is dropped unsent (another
# process may claim it once the lease runs out), so a claimed attempt is never sent
# twice at once.
MAX_HELD = 4000
MAX_AHEAD = 2000
AHEAD_BUDGET = 2.0
FAN_OUT_BATCH = 1000
LEASE_MARGIN = 5.0
DRAIN = 1.0
IDLE_POLL = 5.0
# Turns are coalesced: at least BATCH_DELAY apart while there is work, and a dispatcher
# woken from idle by a commit waits COALESCE first, so that one turn (one write
# transaction, one fan-out query per webhook) carries the events of many commits rather
# than one per group-commit batch. On SQLite every turn takes the one write lock that the
# submissions also need (and a writer that finds it taken sleeps in SQLite's busy handler
# for 1, 2, 5, 10 ms... until it is free): turns there come less often, each carrying more.
BATCH_DELAY = 0.1
SQLITE_BATCH_DELAY = 0.25
COALESCE = 0.05
MAX_TARGETS = 1000


@dataclass(frozen=True)
class Claimed:
    pk: int
    attempt: int
    step: int
    webhook_pk: int
    url: str
    secret: str
    event_id: str
    body: bytes
    response_id: str | None = None  # a `response.created` event's response (see `withdrawn`)


@dataclass(frozen=True)
class Result:
    pk: int
    attempt: int
    step: int
    delivered: bool
    status_code: int | None
    error: str | None


_DELIVERIES = WebhookDelivery.__table__  # type: ignore[attr-defined]


# Driver statements compiled once (`service.bulk`): a turn writes every delivery it queues
# or settles, and SQLAlchemy's per-row work on them ran under SQLite's one write lock.
_INSERT = bulk.Insert(
    _DELIVERIES,
    (
        "webhook_pk",
        "event_pk",
        "event_id",
        "status",
        "attempts",
        "step",
        "next_attempt_at",
        "created_at",
    ),
    suffix="ON CONFLICT (webhook_pk, event_pk) DO NOTHING RETURNING pk, event_pk",
    returns=True,
)
_CLAIM = bulk.Update(_DELIVERIES, ("attempts", "status", "next_attempt_at", "last_error"), ("pk",))
# A result only lands if the row is still at the attempt it reports.
_RECORD = bulk.Update(
    _DELIVERIES,
    ("status", "step", "next_attempt_at", "last_status_code", "last_error", "delivered_at"),
    ("pk", "attempts"),
    condition="status = 'pending'",
)


def work_waiting(session: Session) -> tuple[bool, bool]:
    """Whether a fan-out or a claim has anything to do (read only, so that an idle
    dispatcher never takes SQLite's write lock)."""
    high = feed.last_position(session)
    behind = session.execute(
        select(exists().where(col(Webhook.cursor) < high, _owner_active()))
    ).scalar_one()
    due = session.execute(
        select(
            exists().where(
                col(WebhookDelivery.status) == DeliveryStatus.pending.value,
                col(WebhookDelivery.next_attempt_at) <= utcnow(),
            )
        )
    ).scalar_one()
    return bool(behind), bool(due)


def _owner_active() -> Any:
    return (
        select(col(ApiKey.id))
        .where(col(ApiKey.id) == col(Webhook.owner_key_id), col(ApiKey.revoked_at).is_(None))
        .exists()
    )


@dataclass(frozen=True)
class ClaimRoom:
    """What a turn may claim, its fan-out's first attempts and the claim's together (one
    description for `plan_fan_out`, `step` and `claim`): the server key (for the
    secrets), how many attempts in all, how many this process already holds per webhook
    (in flight or queued), how many it may hold per webhook (`PER_WEBHOOK` where not
    given), the lease."""

    key: bytes
    limit: int
    busy: dict[int, int]
    lease: float
    caps: dict[int, int] = field(default_factory=dict)

    def room(self, webhook_pk: int) -> int:
        return max(0, self.caps.get(webhook_pk, PER_WEBHOOK) - self.busy.get(webhook_pk, 0))


_EVENT_COLUMNS = (
    col(Event.pk),
    col(Event.id),
    col(Event.position),
    col(Event.type),
    col(Event.survey_id),
    col(Event.site),
    col(Event.wave),
    col(Event.occurred_at),
    # The data as its stored JSON text, put into the body as it is (`_body`): decoding it
    # and encoding it again was a tenth of a turn under SQLite's write lock.
    cast(col(Event.data), Text).label("data"),
)


@dataclass(frozen=True)
class Planned:
    """One webhook's share of a fan-out, read and built before the write transaction: the
    cursor it was read at and the one it moves to, the delivery rows to insert, and for
    each row its first attempt when claimed at once (its `pk` still 0), else None."""

    webhook_pk: int
    cursor: int
    moves_to: int
    rows: list[dict[str, Any]]
    attempts: list[Claimed | None]


def plan_fan_out(session: Session, *, claim: ClaimRoom | None) -> list[Planned]:
    """The read half of a fan-out (the module's docstring, 1): it reads, writes nothing,
    and may run in a transaction of its own before the write one (`apply_fan_out`), so
    that reading the events and building the bodies happen outside SQLite's one write
    lock. Within `claim`'s room, first attempts are claimed at once: inserted already
    leased (the attempt counted, `next_attempt_at` past the lease), so no other process
    can claim them, their bodies taken from the events just read (no claim's select,
    event read and update for each of them)."""
    high = feed.last_position(session)
    hooks = session.execute(
        select(
            col(Webhook.pk),
            col(Webhook.cursor),
            col(Webhook.url),
            col(Webhook.secret_nonce),
            col(Webhook.events),
            col(ApiKey.role),
            col(ApiKey.sites),
        )
        .join(ApiKey, col(ApiKey.id) == col(Webhook.owner_key_id))
        .where(col(Webhook.cursor) < high, col(ApiKey.revoked_at).is_(None))
        .order_by(col(Webhook.pk))
    ).all()
    plans: list[Planned] = []
    room = claim.limit if claim is not None else 0
    for hook in hooks:
        query = (
            select(*_EVENT_COLUMNS)
            .where(col(Event.position) > hook.cursor, col(Event.position) <= high)
            .order_by(col(Event.position))
            .limit(FAN_OUT_BATCH)
        )
        query = feed.visible_to(
            session,
            query,
            role=Role(hook.role),
            sites=frozenset(hook.sites) if hook.sites is not None else None,
            types=hook.events,
        )
        events = session.execute(query).all()
        now = utcnow()
        taken = 0
        if claim is not None:
            taken = min(room, len(events), claim.room(hook.pk))
            room -= taken
        lease_until = now + timedelta(seconds=claim.lease) if claim else now
        secret = secrets.webhook_secret(claim.key, hook.secret_nonce) if claim and taken else ""
        rows = [
            {
                "webhook_pk": hook.pk,
                "event_pk": e.pk,
                "event_id": e.id,
                "status": DeliveryStatus.pending.value,
                "attempts": 1 if n < taken else 0,
                "step": 0,
                "next_attempt_at": lease_until if n < taken else now,
                "created_at": now,
            }
            for n, e in enumerate(events)
        ]
        attempts = [
            Claimed(0, 1, 0, hook.pk, hook.url, secret, e.id, _body(e), _subject(e))
            if n < taken
            else None
            for n, e in enumerate(events)
        ]
        moves_to = events[-1].position if len(events) == FAN_OUT_BATCH else high
        plans.append(Planned(hook.pk, hook.cursor, moves_to, rows, attempts))
    return plans


def apply_fan_out(session: Session, plans: list[Planned]) -> list[Claimed | None]:
    """The write half: each webhook's cursor moves from where its plan read it, only if
    it is still there and its owner still active (compare and set: of two processes that
    planned the same events, one moves the cursor and the other finds it moved and drops
    its plan; a webhook revoked or deleted meanwhile is skipped), and its rows are
    inserted (a unique key on webhook and event backs that up). One entry per queued
    delivery: its claimed first attempt, or None for one left pending."""
    queued: list[Claimed | None] = []
    for plan in plans:
        moved = session.execute(
            update(Webhook)
            .where(
                col(Webhook.pk) == plan.webhook_pk,
                col(Webhook.cursor) == plan.cursor,
                _owner_active(),
            )
            .values(cursor=plan.moves_to)
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            continue
        delivery_of = {row.event_pk: row.pk for row in _INSERT.execute(session, plan.rows)}
        for row, attempt in zip(plan.rows, plan.attempts, strict=True):
            pk = delivery_of.get(row["event_pk"])
            if pk is None:
                continue  # queued before
            queued.append(None if attempt is None else replace(attempt, pk=pk))
    return queued


def fan_out(session: Session) -> int:
    """Queue the deliveries of new events for every webhook behind the feed, in one
    transaction; returns how many were queued."""
    return len(apply_fan_out(session, plan_fan_out(session, claim=None)))


def _body(event: Any) -> bytes:
    """The event as the feed shows it (`feed.to_public`), serialised directly."""
    return orjson.dumps(
        {
            "id": event.id,
            "type": event.type,
            "survey": event.survey_id,
            "site": event.site,
            "wave": event.wave,
            "occurred_at": event.occurred_at,
            "data": orjson.Fragment(event.data),
        },
        option=orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC,
    )


def _subject(event: Any) -> str | None:
    """The response a `response.created` body carries answers of (None once erased)."""
    if event.type != EventType.response_created.value:
        return None
    data = orjson.loads(event.data)
    if not isinstance(data, dict) or data.get("erased"):
        return None
    found = data.get("id")
    return found if isinstance(found, str) else None


@dataclass(frozen=True)
class Withdrawn:
    """What this process holds in memory that may no longer be sent: webhooks deleted or
    whose owner key was revoked, and responses erased since their bodies were read."""

    webhooks: set[int] = field(default_factory=set)
    responses: set[str] = field(default_factory=set)


def withdrawn(session: Session, *, webhooks: set[int], responses: set[str]) -> Withdrawn:
    """Which of the held attempts' webhooks and responses are gone, as of this
    transaction. Claimed attempts wait in memory for up to `LEASE_MARGIN` seconds; every
    turn checks them here, so an erasure, a revocation or a deletion stops them within one
    turn instead of letting answers erased meanwhile go out (contract §9: after an erasure
    no pending delivery holds the erased answers)."""
    found = Withdrawn()
    if webhooks:
        active = session.execute(
            select(col(Webhook.pk))
            .join(ApiKey, col(ApiKey.id) == col(Webhook.owner_key_id))
            .where(col(Webhook.pk).in_(webhooks), col(ApiKey.revoked_at).is_(None))
        ).scalars()
        found.webhooks.update(webhooks - set(active))
    ids = list(responses)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        kept = session.execute(select(col(Response.id)).where(col(Response.id).in_(chunk)))
        found.responses.update(set(chunk) - set(kept.scalars()))
    return found


def claim(session: Session, room: ClaimRoom) -> list[Claimed]:
    """Claim due attempts within `room` (up to its limit in all; per webhook at most its
    cap, counting the attempts this process already holds)."""
    caps, limit = room.caps, room.limit
    now = utcnow()
    d = _DELIVERIES.c
    query = (
        select(
            d.pk,
            d.webhook_pk,
            d.event_pk,
            d.event_id,
            d.attempts,
            d.step,
            d.last_error,
            col(Webhook.url),
            col(Webhook.secret_nonce),
        )
        .join(Webhook, col(Webhook.pk) == d.webhook_pk)
        .join(ApiKey, col(ApiKey.id) == col(Webhook.owner_key_id))
        .where(
            d.status == DeliveryStatus.pending.value,
            d.next_attempt_at <= now,
            col(ApiKey.revoked_at).is_(None),
        )
        .order_by(d.next_attempt_at, d.pk)
        .limit(limit * 2)
        .with_for_update(skip_locked=True, of=_DELIVERIES)
    )
    full = [pk for pk in room.busy if not room.room(pk)]
    if full:
        query = query.where(d.webhook_pk.not_in(full))
    counts = dict(room.busy)
    chosen: list[Any] = []
    for row in session.execute(query).all():
        if len(chosen) >= limit:
            break
        if counts.get(row.webhook_pk, 0) >= caps.get(row.webhook_pk, PER_WEBHOOK):
            continue
        counts[row.webhook_pk] = counts.get(row.webhook_pk, 0) + 1
        chosen.append(row)
    if not chosen:
        return []
    events = {
        e.pk: e
        for e in session.execute(
            select(*_EVENT_COLUMNS).where(col(Event.pk).in_([row.event_pk for row in chosen]))
        ).all()
    }
    lease_until = now + timedelta(seconds=room.lease)
    claimed, updates = [], []
    for row in chosen:
        event = events.get(row.event_pk)
        gone = event is None  # pruned past its retention while pending
        updates.append(
            {
                "pk": row.pk,
                "attempts": row.attempts + 1,
                "status": (DeliveryStatus.failed if gone else DeliveryStatus.pending).value,
                "next_attempt_at": now if gone else lease_until,
                "last_error": "the event is past its retention" if gone else row.last_error,
            }
        )
        if event is not None:
            claimed.append(
                Claimed(
                    row.pk,
                    row.attempts + 1,
                    row.step,
                    row.webhook_pk,
                    row.url,
                    secrets.webhook_secret(room.key, row.secret_nonce),
                    row.event_id,
                    _body(event),
                    _subject(event),
                )
            )
    _CLAIM.execute(session, updates)
    return claimed


def next_delay(schedule: list[int], step: int) -> float | None:
    """Seconds until the next attempt after a failure at `step`, jittered; None once
    the schedule is spent."""
    if step >= len(schedule):
        return None
    return schedule[step] * random.uniform(0.9, 1.1)


def record(session: Session, results: list[Result], *, schedule: list[int]) -> None:
    """Land the attempts' results (a result only lands if the row is still at the
    attempt it reports: a lapsed lease's late answer changes nothing): `delivered`; or
    the next delay of the schedule after a failure; or `failed` once it is spent."""
    now = utcnow()
    rows = []
    for r in results:
        delay = None if r.delivered else next_delay(schedule, r.step)
        if r.delivered:
            status, step, at = DeliveryStatus.delivered, r.step, now
        elif delay is None:
            status, step, at = DeliveryStatus.failed, r.step, now
        else:
            status, step, at = DeliveryStatus.pending, r.step + 1, now + timedelta(seconds=delay)
        rows.append(
            {
                "pk": r.pk,
                "attempts": r.attempt,
                "status": status.value,
                "step": step,
                "next_attempt_at": at,
                "last_status_code": r.status_code,
                "last_error": r.error,
                "delivered_at": now if r.delivered else None,
            }
        )
    _RECORD.execute(session, rows)


def step(
    session: Session,
    *,
    results: list[Result],
    schedule: list[int],
    room: ClaimRoom,
    held: tuple[set[int], set[str]] = (set(), set()),
    planned: list[Planned] | None = None,
) -> tuple[list[Claimed], Withdrawn]:
    """A dispatcher's write work in one transaction: record the finished attempts, fan
    out new events (`planned` before, in a read transaction of its own, or here), check
    the attempts it holds in memory and those just claimed (`held`: their webhooks and
    responses; `withdrawn`: a response erased since its body was read is not sent), claim
    due attempts, the fan-out's first attempts and the claim's together within `room`."""
    record(session, results, schedule=schedule)
    if planned is None:
        planned = plan_fan_out(session, claim=room if room.limit > 0 else None)
    fresh = [c for c in apply_fan_out(session, planned) if c is not None]
    subjects = {c.response_id for c in fresh if c.response_id is not None}
    gone = withdrawn(session, webhooks=held[0], responses=held[1] | subjects)
    claimed = [c for c in fresh if c.response_id not in gone.responses]
    busy = dict(room.busy)
    for c in claimed:
        busy[c.webhook_pk] = busy.get(c.webhook_pk, 0) + 1
    rest = replace(room, limit=room.limit - len(fresh), busy=busy)
    if rest.limit > 0:
        claimed += claim(session, rest)
    return claimed, gone


class Dispatcher:
    """The delivery loop of one process (see the module's docstring)."""

    def __init__(self, database: Database, settings: Settings, wakeup: Wakeup) -> None:
        self.database = database
        self.settings = settings
        self.wakeup = wakeup
        self._key: bytes | None = None  # read (or made) once a webhook exists
        self.timeout = settings.webhook_timeout
        self.schedule = list(settings.webhook_retry_schedule)
        # Per webhook: attempts held (in flight or queued), in flight, queued with the
        # monotonic time of the turn that claimed them, and the recent attempt duration.
        self._held: dict[int, int] = {}
        self._flying: dict[int, int] = {}
        self._queues: dict[int, deque[tuple[float, Claimed]]] = {}
        self._seconds: dict[int, float] = {}
        self._in_flight = 0
        self._results: list[Result] = []
        self._kick: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._signers: dict[str, Signer] = {}
        self._targets: dict[str, ssrf.Target] = {}  # literal-IP URLs, checked (`_post`)
        self._was_busy = False
        self._client: http.Client | None = None
        self._batch_delay = BATCH_DELAY if database.dialect == "postgresql" else SQLITE_BATCH_DELAY

    async def run(self) -> None:
        self._kick = asyncio.Event()
        self._client = http.Client()
        try:
            while True:
                seen = self.wakeup.generation()
                try:
                    busy = await self._turn()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("webhook dispatcher turn failed: %s", type(exc).__name__)
                    busy = False
                if not busy:
                    await self._idle(seen)
        finally:
            await self._drain()
            self._client.close()

    async def _drain(self) -> None:
        """On the way out: the attempts in flight get `DRAIN` seconds to finish, and the
        results in hand are recorded, so that a clean stop does not leave delivered
        events to be sent again once their leases run out (a crash does: at least once)."""
        self._queues.clear()
        with contextlib.suppress(Exception):
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=DRAIN)
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._results:
            results, self._results = self._results, []
            with contextlib.suppress(Exception):
                await self.database.run(record, write=True, results=results, schedule=self.schedule)

    async def _idle(self, seen: int) -> None:
        assert self._kick is not None
        kick = asyncio.ensure_future(self._kick.wait())
        woken = asyncio.ensure_future(self.wakeup.wait(seen, IDLE_POLL))
        try:
            await asyncio.wait({kick, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
            woken.cancel()
        await asyncio.sleep(COALESCE)
        self._kick.clear()

    def _cap(self, webhook_pk: int) -> int:
        """How many attempts this process may hold for a webhook (see `MAX_AHEAD`)."""
        seconds = self._seconds.get(webhook_pk)
        if seconds is None:
            return PER_WEBHOOK
        ahead = int(PER_WEBHOOK * AHEAD_BUDGET / max(seconds, 0.001))
        return max(PER_WEBHOOK, min(MAX_AHEAD, ahead))

    async def _turn(self) -> bool:
        """One turn; True if it did something (the next turn then follows after
        `BATCH_DELAY`, so that under load each transaction carries a batch)."""
        results, self._results = self._results, []
        if not results and not self._was_busy:
            behind, due = await self.database.run(work_waiting, write=False)
            if not (behind or due):
                return False
        started = time.monotonic()
        free = MAX_HELD - sum(self._held.values())
        lease = self.timeout + LEASE_MARGIN
        caps = {pk: self._cap(pk) for pk in self._seconds}
        room = ClaimRoom(self._server_key(), free, dict(self._held), lease, caps)
        planned = None  # PostgreSQL: planned in the write transaction (one round trip less)
        if self.database.dialect == "sqlite":
            # The fan-out's reads and bodies first, outside the one write lock that the
            # submissions wait for (`plan_fan_out`).
            planned = await self.database.run(
                plan_fan_out, write=False, claim=room if room.limit > 0 else None
            )
        claimed, gone = await self.database.run(
            step,
            write=True,
            results=results,
            schedule=self.schedule,
            room=room,
            held=self._holding(),
            planned=planned,
        )
        self._withdraw(gone)
        for attempt in claimed:
            self._queue(attempt, started)
        self._was_busy = bool(results or claimed)
        if self._was_busy:
            await asyncio.sleep(self._batch_delay)
        return self._was_busy

    def _holding(self) -> tuple[set[int], set[str]]:
        """The webhooks and responses of the attempts queued in memory (not yet sent)."""
        webhooks: set[int] = set()
        responses: set[str] = set()
        for pk, queue in self._queues.items():
            webhooks.add(pk)
            responses.update(a.response_id for _, a in queue if a.response_id is not None)
        return webhooks, responses

    def _withdraw(self, gone: Withdrawn) -> None:
        """Drop the queued attempts `gone` names, unsent. Their rows stay claimed until
        the lease runs out; a later claim then finds the webhook gone or revoked (no
        attempt) or the event scrubbed (its body without the answers)."""
        for pk in list(self._queues):
            queue = self._queues[pk]
            keep = deque(
                (at, a)
                for at, a in queue
                if pk not in gone.webhooks and a.response_id not in gone.responses
            )
            for _ in range(len(queue) - len(keep)):
                self._release(pk)
            if keep:
                self._queues[pk] = keep
            else:
                del self._queues[pk]

    def _server_key(self) -> bytes:
        if self._key is None:
            self._key = secrets.server_key(self.settings)
        return self._key

    def _queue(self, attempt: Claimed, claimed_at: float) -> None:
        pk = attempt.webhook_pk
        self._held[pk] = self._held.get(pk, 0) + 1
        self._queues.setdefault(pk, deque()).append((claimed_at, attempt))
        self._pump(pk)

    def _pump(self, webhook_pk: int) -> None:
        """Start the webhook's queued attempts as far as the in-flight limits allow."""
        queue = self._queues.get(webhook_pk)
        while (
            queue
            and self._in_flight < MAX_IN_FLIGHT
            and self._flying.get(webhook_pk, 0) < PER_WEBHOOK
        ):
            claimed_at, attempt = queue.popleft()
            if time.monotonic() - claimed_at > LEASE_MARGIN:
                # Its lease could run out before the time-out: leave it to a later claim.
                self._release(webhook_pk)
                continue
            self._in_flight += 1
            self._flying[webhook_pk] = self._flying.get(webhook_pk, 0) + 1
            assert self._client is not None
            task = asyncio.ensure_future(self._send(self._client, attempt))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        if not queue:
            self._queues.pop(webhook_pk, None)

    def _release(self, webhook_pk: int) -> None:
        self._held[webhook_pk] -= 1
        if not self._held[webhook_pk]:
            del self._held[webhook_pk]

    async def _send(self, client: http.Client, attempt: Claimed) -> None:
        code: int | None = None
        error: str | None = None
        began = time.monotonic()
        pk = attempt.webhook_pk
        try:
            async with asyncio.timeout(self.timeout):  # no task of its own, as wait_for's
                code = await self._post(client, attempt)
            if not 200 <= code < 300:
                error = f"HTTP {code}" + (
                    " (redirects are not followed)" if 300 <= code < 400 else ""
                )
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except ssrf.Refused as exc:
            error = str(exc)[:500]
        except (http.BadResponse, OSError, asyncio.IncompleteReadError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        finally:
            was_full = self._in_flight >= MAX_IN_FLIGHT
            self._in_flight -= 1
            self._flying[pk] -= 1
            if not self._flying[pk]:
                del self._flying[pk]
            self._release(pk)
            seconds = time.monotonic() - began
            recent = self._seconds.get(pk)
            self._seconds[pk] = seconds if recent is None else 0.8 * recent + 0.2 * seconds
        self._results.append(
            Result(attempt.pk, attempt.attempt, attempt.step, error is None, code, error)
        )
        self._pump(pk)
        if was_full:
            for other in list(self._queues):
                self._pump(other)
        if self._kick is not None:
            self._kick.set()

    async def _post(self, client: http.Client, attempt: Claimed) -> int:
        target = self._targets.get(attempt.url)
        if target is None:
            allow = self.settings.webhook_allow_private
            if self._literal(attempt.url):
                # An IP address resolves to itself: checked once, kept (no lookup a DNS
                # answer could change, so nothing a rebinding could redirect).
                target = self._targets[attempt.url] = ssrf.resolve(attempt.url, allow_private=allow)
                if len(self._targets) > MAX_TARGETS:
                    self._targets.pop(next(iter(self._targets)))
            else:  # a DNS lookup, each attempt: in a thread, off the event loop
                target = await asyncio.to_thread(ssrf.resolve, attempt.url, allow_private=allow)
        signer = self._signers.get(attempt.secret)
        if signer is None:
            signer = self._signers[attempt.secret] = Signer(attempt.secret)
        now = datetime.now(UTC)
        default_port = 443 if target.scheme == "https" else 80
        host = target.host if ":" not in target.host else f"[{target.host}]"
        headers = {
            "host": host if target.port == default_port else f"{host}:{target.port}",
            "content-type": "application/json",
            "user-agent": "hearme-webhooks/1",
            "webhook-id": attempt.event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(attempt.event_id, now, attempt.body.decode()),
        }
        return await client.post(target, headers, attempt.body)

    @staticmethod
    def _literal(url: str) -> bool:
        """Whether the URL's host is an IP address (no lookup needed)."""
        try:
            host = ssrf.parse(url)[1]
            ipaddress.ip_address(host)
        except (ssrf.Refused, ValueError):
            return False
        return True
