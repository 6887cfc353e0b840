"""Live submissions (contract §5) with group commit: validated alone, stored together.

A submission is checked first, outside any transaction, against the compiled survey in
this process's cache (`prepare`). It then joins the queue of its process, and one writer
at a time stores everything queued in one transaction (`store_batch`): multi-row inserts
of responses, answers and idempotency records, one cells upkeep statement per survey
over all of the batch's responses, one commit and so one fsync for them all. Each
request is answered only once its batch has committed, so every 2xx is durable.

What can still go wrong for one item inside the batch is decided by pre-checks, never by
a failing statement: a definition changed since the item was validated (it is validated
again against the version in force, under the same key-share lock as before); an
`Idempotency-Key` already used (replayed, or 409 for another body or an erased
response); the same key twice in one batch (the first is stored, the second gets its
replay). Those items get their own error or replay and the others are stored. Should the
batch's transaction fail anyway (a lost connection, a bug), its items are retried one
per transaction, so a poisoned item fails alone.

Concurrent batches in other processes meet at the idempotency record's unique key:
claims are `INSERT ... ON CONFLICT DO NOTHING`, and a key another transaction claimed
first is read back as a replay once that transaction has committed (PostgreSQL waits for
it; SQLite's writers are serialised by its write lock).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple
from weakref import WeakKeyDictionary

from anyio import to_thread
from sqlalchemy import select, tuple_
from sqlmodel import Session, col

from schemas.base import utcnow
from schemas.responses import IdempotencyRecord, Response, ResponsePublic, SubmissionIn
from service import audit, bulk
from service.database import Database
from service.errors import Conflict, DomainError, Invalid, NotFound
from service.keys import Principal
from service.permissions import Action, require
from service.responses import (
    Validated,
    check_submission,
    request_hash,
    store_validated,
    to_public,
    wave_is_open,
)
from service.surveys import load_compiled
from service.validation import CompiledSurvey

log = logging.getLogger(__name__)

MAX_BATCH = 256
OTHER_BODY = "this Idempotency-Key was already used with a different body"
ERASED = "the response first stored under this Idempotency-Key was erased"

Outcome = tuple[ResponsePublic, bool] | DomainError  # (stored, created) or the item's error


class Stored(NamedTuple):
    """A stored (or replayed) submission as its request is answered."""

    body: bytes  # the 201 (or replay's 200) body: the stored response as JSON
    created: bool


# What a batch's store gives back per item: its answer, or the error to raise for it.
StoreBatch = Callable[[list["Pending"]], Awaitable[list[Stored | Exception]]]


@dataclass
class Pending:
    """A submission that passed its checks, waiting to be stored."""

    compiled: CompiledSurvey  # the version it was validated against
    principal: Principal
    data: SubmissionIn
    answers: dict[str, Any]
    received_at: datetime
    idempotency_key: str | None
    digest: str | None = field(default=None)
    request_id: str | None = field(default=None)  # for its audit record


def prepare(
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    data: SubmissionIn,
    idempotency_key: str | None,
    received_at: datetime | None = None,
    request_id: str | None = None,
) -> Pending:
    """Every check of a live submission that needs no transaction: role, site, answers,
    the wave open at `received_at` (422, 403, 409 raised here)."""
    require(principal, Action.submit_responses)
    received_at = received_at or utcnow()
    answers = _check(compiled, principal, data, received_at)
    digest = request_hash(data) if idempotency_key is not None else None
    return Pending(
        compiled, principal, data, answers, received_at, idempotency_key, digest, request_id
    )


def _check(
    compiled: CompiledSurvey, principal: Principal, data: SubmissionIn, received_at: datetime
) -> dict[str, Any]:
    answers, problems = check_submission(
        compiled, principal=principal, data=data, received_at=received_at
    )
    if problems:
        raise Invalid("the submission is not valid", problems)
    wave = compiled.definition.wave(data.wave)
    assert wave is not None
    if not wave_is_open(wave, received_at):
        raise Conflict(f"wave {wave.id!r} is not open for submissions")
    return answers


def _revalidate(session: Session, items: Sequence[Pending], outcomes: list[Outcome | None]) -> None:
    """Hold each item to the definition in force in this transaction (key-share locked on
    PostgreSQL, see `load_compiled`): an item validated against an older version is
    checked again, and fails alone if it no longer passes."""
    current: dict[str, CompiledSurvey | NotFound] = {}
    for i, item in enumerate(items):
        survey_id = item.compiled.definition.id
        if survey_id not in current:
            try:
                current[survey_id] = load_compiled(session, survey_id=survey_id, for_write=True)
            except NotFound as exc:
                current[survey_id] = exc
        compiled = current[survey_id]
        if isinstance(compiled, NotFound):
            outcomes[i] = compiled
            continue
        if compiled is not item.compiled:
            try:
                item.answers = _check(compiled, item.principal, item.data, item.received_at)
            except DomainError as exc:
                outcomes[i] = exc
                continue
            item.compiled = compiled


# Claims of new keys, and the link of each claimed record to its stored response, as
# driver statements compiled once (`service.bulk`).
_CLAIM = bulk.Insert(
    IdempotencyRecord.__table__,  # type: ignore[attr-defined]
    ("api_key_id", "key", "request_hash", "created_at"),
    suffix='ON CONFLICT (api_key_id, "key") DO NOTHING RETURNING id, api_key_id, "key"',
    returns=True,
)
_LINK_SQLITE = "UPDATE idempotency_record SET response_pk = ? WHERE id = ?"
_LINK_PG = (
    "UPDATE idempotency_record AS r SET response_pk = v.pk"
    " FROM unnest(%b::bigint[], %b::bigint[]) AS v(id, pk) WHERE r.id = v.id"
)


def _link(session: Session, links: list[tuple[int, int]]) -> None:
    """Point each claimed record (record id, response pk) at its stored response."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        ids, pks = zip(*links, strict=True)
        connection.exec_driver_sql(_LINK_PG, (list(ids), list(pks)))
    else:
        connection.exec_driver_sql(_LINK_SQLITE, [(pk, id_) for id_, pk in links])


def _claim_keys(
    session: Session, items: Sequence[Pending], outcomes: list[Outcome | None]
) -> tuple[dict[int, int], dict[int, int]]:
    """Claim the batch's idempotency keys. Returns the items that claimed a new record
    (item index -> record id) and the in-batch duplicates (item index -> index of the
    first item with its key); items whose key was used before get their outcome here."""
    first: dict[tuple[int, str], int] = {}
    duplicates: dict[int, int] = {}
    for i, item in enumerate(items):
        if outcomes[i] is not None or item.idempotency_key is None:
            continue
        key = (item.principal.key_id, item.idempotency_key)
        if key in first:
            duplicates[i] = first[key]
        else:
            first[key] = i
    if not first:
        return {}, duplicates
    now = utcnow()
    claimed_rows = _CLAIM.execute(
        session,
        [
            {"api_key_id": k[0], "key": k[1], "request_hash": items[i].digest, "created_at": now}
            for k, i in sorted(first.items())  # in key order: concurrent claims cannot deadlock
        ],
    )
    claimed = {first[(key_id, key)]: record_id for record_id, key_id, key in claimed_rows}
    taken = [k for k, i in first.items() if i not in claimed]
    if taken:
        records = session.execute(
            select(IdempotencyRecord).where(
                tuple_(col(IdempotencyRecord.api_key_id), col(IdempotencyRecord.key)).in_(taken)
            )
        ).scalars()
        by_key = {(r.api_key_id, r.key): r for r in records}
        pks = [r.response_pk for r in by_key.values() if r.response_pk is not None]
        stored = {
            r.pk: r
            for r in session.execute(select(Response).where(col(Response.pk).in_(pks))).scalars()
        }
        for key in taken:
            i, record = first[key], by_key[key]
            if record.request_hash != items[i].digest:
                outcomes[i] = Conflict(
                    "this Idempotency-Key was already used with a different body"
                )
            elif record.response_pk is None or record.response_pk not in stored:
                outcomes[i] = Conflict(
                    "the response first stored under this Idempotency-Key was erased"
                )
            else:
                outcomes[i] = (to_public(stored[record.response_pk]), False)
    return claimed, duplicates


def store_batch(session: Session, items: Sequence[Pending]) -> list[Outcome]:
    """Store prepared submissions in the caller's transaction; one outcome per item."""
    outcomes: list[Outcome | None] = [None] * len(items)
    _revalidate(session, items, outcomes)
    claimed, duplicates = _claim_keys(session, items, outcomes)
    to_store = [i for i in range(len(items)) if outcomes[i] is None and i not in duplicates]
    by_survey: dict[str, list[int]] = {}
    for i in to_store:
        by_survey.setdefault(items[i].compiled.definition.id, []).append(i)
    links: list[tuple[int, int]] = []
    for indexes in by_survey.values():
        compiled = items[indexes[0]].compiled
        stored = store_validated(
            session,
            compiled,
            [
                Validated(
                    items[i].data,
                    items[i].answers,
                    items[i].received_at,
                    items[i].principal.name,
                )
                for i in indexes
            ],
        )
        for i, (pk, values) in zip(indexes, stored, strict=True):
            outcomes[i] = (values["public"], True)
            if i in claimed:
                links.append((claimed[i], pk))
    if links:
        _link(session, links)
    for i, leader in duplicates.items():
        outcome = outcomes[leader]
        if isinstance(outcome, DomainError):
            outcomes[i] = outcome
        elif items[i].digest != items[leader].digest:
            outcomes[i] = Conflict(OTHER_BODY)
        else:
            assert outcome is not None
            outcomes[i] = (outcome[0], False)
    assert all(o is not None for o in outcomes)
    done = [o for o in outcomes if o is not None]
    _audit(session, items, done)
    return done


def _audit(session: Session, items: Sequence[Pending], outcomes: Sequence[Outcome]) -> None:
    """The audit records of the stored and replayed items, in the batch's own transaction
    (no second transaction per submission); refused items are recorded by the request's
    audit middleware with their status."""
    audit.record_many(
        session,
        [
            audit.Entry(
                action=audit.Action.response_submit,
                status=201 if outcome[1] else 200,
                principal=item.principal,
                survey=item.compiled.definition.id,
                target=outcome[0].id,
                request_id=item.request_id,
            )
            for item, outcome in zip(items, outcomes, strict=True)
            if not isinstance(outcome, DomainError)
        ],
    )


def submit(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    data: SubmissionIn,
    idempotency_key: str | None = None,
) -> tuple[ResponsePublic, bool]:
    """Validate and store one submission in the caller's transaction (scripts, tests);
    returns it and whether it is new."""
    pending = prepare(compiled, principal=principal, data=data, idempotency_key=idempotency_key)
    (outcome,) = store_batch(session, [pending])
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


@dataclass
class _Queue:
    items: list[tuple[Pending, "asyncio.Future[Stored | Exception]"]] = field(default_factory=list)
    writers: int = 0  # writer tasks draining it now
    tasks: set["asyncio.Task[None]"] = field(default_factory=set)  # referenced while they run


# Writer tasks per process and database. SQLite has one write lock: one writer. On
# PostgreSQL a batch spends most of its time waiting for the server (a dozen round trips
# and the commit's fsync) while the process's CPU idles, so a second batch is stored
# meanwhile; the two meet only where concurrent batches of two processes would (rows
# locked in key order, the outbox's position lock taken last), so they cannot deadlock.
WRITERS = {"sqlite": 1, "postgresql": 2}


class GroupCommit:
    """The submissions queue of one database in one process, drained by writer tasks
    (`WRITERS`) per event loop: each turn a writer takes everything queued (up to
    `max_batch`) and has it stored in one unit of work, then answers each waiting request.
    Requests that arrive meanwhile form the next batch: under load batches grow by
    themselves, and a lone request is stored at once.

    Where a batch is stored is `store`: by default a worker thread of this process
    (`store_in_thread`, after `Database.turn`, so it holds SQLite's write turn like any
    writer); `hearme serve` gives each worker a writer process of its own
    (`service.writer.WriterProcess.store`), so storing runs on another core."""

    def __init__(
        self,
        database: Database,
        *,
        max_batch: int = MAX_BATCH,
        writers: int | None = None,
        store: StoreBatch | None = None,
    ) -> None:
        self.database = database
        self.max_batch = max_batch
        self.writers = writers or WRITERS.get(database.dialect, 1)
        self.store: StoreBatch = store or self.store_in_thread
        self._queues: WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue] = WeakKeyDictionary()

    async def submit(self, pending: Pending) -> Stored:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[Stored | Exception] = loop.create_future()
        queue.items.append((pending, future))
        if queue.writers < self.writers:
            # Counted here and uncounted in `_drain`'s finally, with no await between a
            # writer's last look at the queue and its leaving: no item is ever left behind.
            queue.writers += 1
            task = loop.create_task(self._drain(queue))
            queue.tasks.add(task)
            task.add_done_callback(queue.tasks.discard)
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def _drain(self, queue: _Queue) -> None:
        try:
            while queue.items:
                batch = queue.items[: self.max_batch]
                del queue.items[: self.max_batch]
                try:
                    outcomes = await self.store([pending for pending, _ in batch])
                except Exception as exc:
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            queue.writers -= 1

    async def store_in_thread(self, items: list[Pending]) -> list[Stored | Exception]:
        """`store_alone_on_failure` in a worker thread, holding this process's write turn
        (SQLite) like any writer."""
        async with self.database.turn(write=True):
            return await to_thread.run_sync(store_alone_on_failure, self.database, items)


def store_alone_on_failure(database: Database, items: list[Pending]) -> list[Stored | Exception]:
    """Store the items in one unit of work, each answered as its request will be; should
    that transaction fail, store them one per transaction, so a poisoned item fails alone
    (in a worker's thread, and in its writer process, `service.writer`)."""
    try:
        with database.session(write=True) as session:
            outcomes = store_batch(session, items)
    except Exception as exc:
        if len(items) == 1:
            return [exc]
        log.warning("a batch of %d submissions failed; retrying one by one", len(items))
        return [result for one in items for result in store_alone_on_failure(database, [one])]
    return [o if isinstance(o, DomainError) else Stored(_to_json(o[0]), o[1]) for o in outcomes]


_to_json = ResponsePublic.__pydantic_serializer__.to_json
