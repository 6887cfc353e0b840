"""The submissions writer: a process of its own that stores each worker's batches.

Why a process. Each worker used to store its group-commit batches in a thread of its
own process, and under load the two halves of a submission took turns at one GIL: the
event loop (HTTP, the middleware, the checks; about 0.35 ms a request) and the writer
(the batch's statements, the public forms, the events and audit rows, the commit; about
as much again) together could never use more than one core, while the machine had two.
Here the writer is a child process of the worker, so each half runs on a core of its
own, as PostgreSQL's own server processes already did for the SQL.

The worker still does everything that needs no transaction (authentication, the rate
limit, every check of `submissions.prepare`, so a 422 or 403 never waits for a batch),
and the group commit's queue (`submissions.GroupCommit`): a batch is sent to the child
(`WriterProcess.store`) instead of to a thread. The child checks each item again against
its own copy of the compiled survey (`prepare`, exactly the checks the worker made, so
an item the worker validated against an older definition is held to the one in force),
stores the batch in one unit of work (`submissions.store_batch`: one transaction, one
fsync), and sends back each item's outcome: the 201 or 200 body as JSON, or its error.
Each request is answered only once that reply arrives, so every 2xx is still durable.

Framing is `multiprocessing.connection` over a socket pair (length-prefixed pickles);
the worker's end is read by one thread, which hands each reply to the event loop that
sent the batch. Failure:

- a database error is classified in the child (`storage_full`, `unreachable`) and raised
  in the worker as `StorageFull` (507) or `Unavailable` (503), what the same error gives
  in the worker's own transactions;
- the child gone (killed, crashed): every batch in flight fails with `Unavailable` (503;
  a batch may have committed before the child died, and a retry with its
  Idempotency-Key then replays it), and the next batch starts a new child;
- the worker gone: the child reads the end of its socket, finishes the batches it holds
  and exits, so no orphan is left writing.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import pickle
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from queue import SimpleQueue
from typing import Any

from schemas.keys import Role
from schemas.responses import SubmissionIn
from service import errors, submissions
from service.database import Database, storage_full, unreachable
from service.errors import DomainError, Invalid, Unavailable
from service.events import outbox
from service.keys import Principal
from service.settings import Settings
from service.surveys import cached_compiled, compiled_version, load_compiled

log = logging.getLogger(__name__)

GONE = "the submissions writer stopped; nothing of this batch is known to be stored"
STOP_TIMEOUT = 10.0

# An item as sent: the survey (id, version, stamp) it was checked against, the key (id,
# name, role, sites), the envelope as received (site, wave, answers, submitted_at,
# language), what the checks made of it (the answers as they will be stored, the body's
# digest), and received_at, the Idempotency-Key and the request id.
Wire = tuple[Any, ...]
# An outcome as sent back: ("ok", body JSON, created) or ("error", kind, detail, problems).
WireOutcome = tuple[Any, ...]


def to_wire(pending: submissions.Pending) -> Wire:
    data, principal, compiled = pending.data, pending.principal, pending.compiled
    return (
        compiled.definition.id,
        compiled.version,
        compiled.stamp,
        principal.key_id,
        principal.name,
        principal.role.value,
        principal.sites,
        data.site,
        data.wave,
        data.answers,
        data.submitted_at,
        data.language,
        pending.answers,
        pending.digest,
        pending.received_at,
        pending.idempotency_key,
        pending.request_id,
    )


# --- the worker's side ---------------------------------------------------------------


@dataclass
class _Waiting:
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[list[submissions.Stored | Exception]]"


class WriterProcess:
    """The worker's handle on its writer child: `store` is `GroupCommit`'s store."""

    def __init__(self, settings: Settings, command: Sequence[str]) -> None:
        self.settings = settings
        self.command = list(command)  # run with the child's socket's fd appended
        self._lock = threading.Lock()  # the connection, the child and the waiting batches
        self._connection: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._waiting: dict[int, _Waiting] = {}
        self._ids = itertools.count()

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair()
        process = subprocess.Popen(
            [*self.command, str(theirs.fileno())], pass_fds=(theirs.fileno(),)
        )
        theirs.close()
        connection = Connection(ours.detach())
        # The settings go over the socket, not the command line (they may hold secrets).
        connection.send_bytes(self.settings.model_dump_json().encode())
        self._connection, self._process = connection, process
        threading.Thread(
            target=self._read, args=(connection,), name="hearme-writer-replies", daemon=True
        ).start()

    async def store(self, items: list[submissions.Pending]) -> list[submissions.Stored | Exception]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[submissions.Stored | Exception]] = loop.create_future()
        payload = pickle.dumps(
            (batch := next(self._ids), [to_wire(item) for item in items]), pickle.HIGHEST_PROTOCOL
        )
        with self._lock:
            if self._connection is None:
                self._start()
            assert self._connection is not None
            self._waiting[batch] = _Waiting(loop, future)
            try:
                self._connection.send_bytes(payload)
            except OSError:
                self._waiting.pop(batch)
                self._gone(self._connection)
                raise Unavailable(GONE) from None
        return await future

    def _read(self, connection: Connection) -> None:
        """The replies of one child, until its end of the socket closes."""
        try:
            while True:
                batch, outcomes = pickle.loads(connection.recv_bytes())  # noqa: S301  (our child)
                with self._lock:
                    waiting = self._waiting.pop(batch, None)
                if waiting is not None:
                    results = [_outcome(o) for o in outcomes]
                    waiting.loop.call_soon_threadsafe(_settle, waiting.future, results)
                if any(o[0] == "ok" and o[2] for o in outcomes):
                    outbox.notify_local()  # this process's long polls (the child has none)
        except (EOFError, OSError):
            pass
        with self._lock:
            self._gone(connection)

    def _gone(self, connection: Connection) -> None:
        """The child behind `connection` is gone (lock held): fail its batches in flight;
        the next batch starts a new one."""
        if self._connection is not connection:
            return
        log.warning("the submissions writer stopped; %d batches failed", len(self._waiting))
        for waiting in self._waiting.values():
            waiting.loop.call_soon_threadsafe(_fail, waiting.future, Unavailable(GONE))
        self._waiting.clear()
        connection.close()
        self._connection = None
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()  # reaped, not left a zombie beside its successor

    def stop(self) -> int | None:
        """Close the socket: the child stores what it holds, then exits; its exit code
        (None if it was not running)."""
        with self._lock:
            connection, process = self._connection, self._process
            self._connection = self._process = None
        if connection is not None:
            # Shut the socket down before closing it: the reply thread blocked reading it
            # keeps it open past a close alone, and the child would never see its end.
            with (
                contextlib.suppress(OSError),
                socket.socket(fileno=os.dup(connection.fileno())) as ours,
            ):
                ours.shutdown(socket.SHUT_RDWR)
            connection.close()
        if process is None:
            return None
        try:
            return process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.warning("the submissions writer did not stop in %s s; killed", STOP_TIMEOUT)
            process.kill()
            return process.wait()


def _settle(future: "asyncio.Future[Any]", result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: "asyncio.Future[Any]", exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)


def _outcome(sent: WireOutcome) -> submissions.Stored | Exception:
    if sent[0] == "ok":
        return submissions.Stored(sent[1], sent[2])
    _, kind, detail, problems = sent
    if kind == "Invalid":
        return Invalid(detail, problems)
    if kind in ERRORS:
        return ERRORS[kind](detail)
    return WriterFailed(detail)


# --- the child's side ----------------------------------------------------------------


def _encode_error(exc: BaseException) -> WireOutcome:
    if isinstance(exc, Invalid):
        return ("error", "Invalid", exc.detail, exc.errors)
    if isinstance(exc, DomainError):
        return ("error", KINDS.get(type(exc), "unexpected"), exc.detail, None)
    if storage_full(exc):
        return ("error", "StorageFull", "the database has no room left; nothing was stored", None)
    if unreachable(exc):
        return ("error", "Unavailable", UNREACHABLE, None)
    log.error("a submission failed in the writer", extra={"error_type": type(exc).__name__})
    return ("error", "unexpected", f"the submissions writer failed: {type(exc).__name__}", None)


UNREACHABLE = "the database cannot be reached or did not answer in time; try again shortly"


def serve(connection: Connection, *, configure_logs: Callable[[str], None]) -> None:
    """The child's loop: batches in, outcomes out, until the worker's end closes.
    `WRITERS` batches are stored at once (threads of this process), as in a worker."""
    settings = Settings.model_validate_json(connection.recv_bytes())
    configure_logs(settings.log_level)
    database = Database(settings)
    batches: SimpleQueue[tuple[int, list[Wire]] | None] = SimpleQueue()
    send_lock = threading.Lock()

    def reply(batch: int, outcomes: list[WireOutcome]) -> None:
        payload = pickle.dumps((batch, outcomes), pickle.HIGHEST_PROTOCOL)
        # The worker gone, nobody is waiting for this answer.
        with send_lock, contextlib.suppress(OSError):
            connection.send_bytes(payload)

    def work() -> None:
        while (message := batches.get()) is not None:
            batch, wires = message
            try:
                outcomes = store_wires(database, wires)
            except Exception as exc:  # never a batch left unanswered
                outcomes = [_encode_error(exc)] * len(wires)
            reply(batch, outcomes)

    threads = [
        threading.Thread(target=work, name=f"hearme-writer-{i}")
        for i in range(submissions.WRITERS.get(database.dialect, 1))
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            batches.put(pickle.loads(connection.recv_bytes()))  # noqa: S301  (our worker)
    except (EOFError, OSError):
        pass
    finally:
        for _ in threads:
            batches.put(None)
        for thread in threads:
            thread.join()
        database.dispose()


def store_wires(database: Database, wires: list[Wire]) -> list[WireOutcome]:
    """Store the items in one unit of work (a failed batch is retried one item per
    transaction, as the worker's thread did).

    An item checked against a version of the survey this process has compiled too is
    taken as checked (the batch's transaction holds it to the version in force, as in the
    worker, `submissions.store_batch`); any other is checked here again (`prepare`)
    against this process's copy, a read when it has none."""
    outcomes: list[WireOutcome | None] = [None] * len(wires)
    pending: list[tuple[int, submissions.Pending]] = []
    for i, wire in enumerate(wires):
        try:
            pending.append((i, _pending(database, wire)))
        except Exception as exc:  # its error, or the database's (a read when uncompiled)
            outcomes[i] = _encode_error(exc)
    for i, outcome in _store(database, pending):
        outcomes[i] = outcome
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def _pending(database: Database, wire: Wire) -> submissions.Pending:
    (
        survey_id,
        version,
        stamp,
        key_id,
        name,
        role,
        sites,
        site,
        wave,
        raw_answers,
        submitted_at,
        language,
        answers,
        digest,
        received_at,
        idempotency_key,
        request_id,
    ) = wire
    principal = Principal(key_id, name, Role(role), sites)
    data = SubmissionIn.model_construct(  # the envelope the worker validated
        site=site, wave=wave, answers=raw_answers, submitted_at=submitted_at, language=language
    )
    compiled = compiled_version(survey_id, version, stamp)
    if compiled is not None:
        return submissions.Pending(
            compiled, principal, data, answers, received_at, idempotency_key, digest, request_id
        )
    compiled = cached_compiled(survey_id)
    if compiled is None:
        with database.session(write=False) as session:
            compiled = load_compiled(session, survey_id=survey_id)
    return submissions.prepare(
        compiled,
        principal=principal,
        data=data,
        idempotency_key=idempotency_key,
        received_at=received_at,
        request_id=request_id,
    )


def _store(
    database: Database, pending: list[tuple[int, submissions.Pending]]
) -> list[tuple[int, WireOutcome]]:
    if not pending:
        return []
    outcomes = submissions.store_alone_on_failure(database, [p for _, p in pending])
    return [
        (i, ("ok", o.body, o.created) if isinstance(o, submissions.Stored) else _encode_error(o))
        for (i, _), o in zip(pending, outcomes, strict=True)
    ]


# Error classes by the name they travel under (an Invalid travels with its problems).
ERRORS: dict[str, type[DomainError]] = {
    cls.__name__: cls
    for cls in (
        errors.NotFound,
        errors.Unauthenticated,
        errors.Forbidden,
        errors.Conflict,
        errors.Gone,
        errors.TooLarge,
        errors.StorageFull,
        errors.Unavailable,
    )
}
KINDS: dict[type[DomainError], str] = {cls: kind for kind, cls in ERRORS.items()}


class WriterFailed(Exception):
    """An unexpected error in the writer child (a 500, logged there with its type)."""
