"""Engines, the unit of work and migrations for SQLite (embedded default) and PostgreSQL.

Every write goes through `Database`: `Database.session()` is the unit of work (it owns the
transaction: commit on success, roll back on error), and in the server `Database.turn()`
hands out, FIFO, the connection slots and SQLite's one write turn before a unit of work
starts; `Database.run()` is the two together, for a whole transaction run in one worker
thread. Services only take a `Session`, add, flush and execute; they never begin, commit
or roll back.
"""

import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from anyio import Lock, Semaphore, to_thread
from anyio.lowlevel import RunVar
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from service.settings import Settings

WRITE_OPTION = "hearme_write"
BUSY_TIMEOUT_SECONDS = 30  # SQLite: how long a writer waits for the write lock


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy issue BEGIN itself so that a whole request is one transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    return on_connect


class _WriteTurns:
    """SQLite's write lock, handed over between processes within 2 ms of its release.

    Several processes write to one SQLite file: the workers, each worker's submissions
    writer (`service.writer`) and the webhook delivery process. SQLite lets one write at
    a time and makes the others wait in its busy handler, which sleeps (1, 2, 5, 10 ms
    and longer) between tries: a writer could sleep well past the moment the lock came
    free, and under load a submission batch waited behind those sleeps (a p99 of 0.5 s
    with two workers). So each write transaction first takes an exclusive `flock` on a
    file beside the database (`<database>-hearme.lock`), then BEGIN IMMEDIATE, and lets
    it go once COMMIT or ROLLBACK has returned: waiting writers try the file again
    within 2 ms of its release (`take`). SQLite's own lock stays the guarantee
    (anything writing without this file, a backup or another program, still meets it).
    A process that dies holding the file's lock loses it with its descriptors."""

    def __init__(self, database: str) -> None:
        self.path = f"{database}-hearme.lock"
        self._files: dict[int, int] = {}  # id of the DB-API connection -> its lock file

    @staticmethod
    def _key(connection: Any) -> int:
        """The DB-API connection's id, given it or the pool's proxy of it (SQLAlchemy
        commits through the proxy)."""
        return id(getattr(connection, "dbapi_connection", connection))

    def take(self, dbapi_connection: Any) -> None:
        fd = self._files.get(self._key(dbapi_connection))
        if fd is None:
            fd = self._files[self._key(dbapi_connection)] = os.open(
                self.path, os.O_RDWR | os.O_CREAT, 0o600
            )
        # Tried without blocking, with waits from 50 µs growing to 2 ms (not SQLite's 1 ms
        # to 100 ms), for at most SQLite's own busy time-out: a holder that hangs (or a
        # unit of work opened inside another by mistake) then meets SQLite's lock and
        # its "database is locked", never a wait without end.
        wait, deadline = 0.00005, time.monotonic() + BUSY_TIMEOUT_SECONDS
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return  # go on without it: SQLite's busy handler decides
                time.sleep(wait)
                wait = min(wait * 2, 0.002)

    def release(self, dbapi_connection: Any) -> None:
        fd = self._files.get(self._key(dbapi_connection))
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def forget(self, dbapi_connection: Any) -> None:
        fd = self._files.pop(self._key(dbapi_connection), None)
        if fd is not None:
            os.close(fd)  # releases its lock too

    def install(self, engine: Engine) -> None:
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_connection: Any) -> None:
            try:
                commit(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        def do_rollback(dbapi_connection: Any) -> None:
            try:
                rollback(dbapi_connection)
            finally:
                self.release(dbapi_connection)

        dialect.do_commit = do_commit  # type: ignore[method-assign]
        dialect.do_rollback = do_rollback  # type: ignore[method-assign]
        event.listen(engine, "close", lambda dbapi, _record: self.forget(dbapi))
        event.listen(engine, "invalidate", lambda dbapi, _record, _exc: self.forget(dbapi))


def _sqlite_begin(turns: _WriteTurns | None) -> Any:
    def begin(conn: Any) -> None:
        # A write transaction takes the write lock at BEGIN: concurrent writers then queue
        # (on the lock file, then busy_timeout) instead of one failing with "database is
        # locked" when it upgrades a read lock. Reads begin deferred beside writers (WAL).
        write = conn.get_execution_options().get(WRITE_OPTION, False)
        if not write or turns is None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        turns.take(dbapi_connection)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:  # no transaction began: nothing will commit or roll back
            turns.release(dbapi_connection)
            raise

    return begin


# SQLSTATEs and SQLite result codes that mean "no room left" (a 507, contract §11).
PG_DISK_FULL = {"53100", "53200"}  # disk_full, out_of_memory
SQLITE_FULL = 13


def storage_full(exc: BaseException) -> bool:
    """The database refused a write for want of space (SQLite SQLITE_FULL, PostgreSQL
    disk_full). Nothing was half-written: the transaction was rolled back."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
        return True
    return getattr(orig, "sqlstate", None) in PG_DISK_FULL


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (or, on SQLite, stayed
    locked past the busy timeout): the request may be retried; a 503."""
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _pg_connect_args(settings: Settings) -> dict[str, Any]:
    """Time-outs so that an unreachable PostgreSQL is an error within seconds, never a
    hang: connecting (`connect_timeout`), sent data never acknowledged (a dropped network,
    `tcp_user_timeout`), an idle connection whose peer vanished (keepalives), and a
    statement that runs too long on the server (`statement_timeout`)."""
    args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "tcp_user_timeout": settings.db_connect_timeout * 1000,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    if settings.db_statement_timeout:
        args["options"] = f"-c statement_timeout={settings.db_statement_timeout * 1000}"
    return args


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas(settings.sqlite_synchronous))
        turns = None
        if url.database and url.database != ":memory:":
            turns = _WriteTurns(str(Path(url.database).expanduser().resolve()))
            turns.install(engine)
        event.listen(engine, "begin", _sqlite_begin(turns))
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,  # a connection broken by an outage is replaced, not used
        pool_timeout=settings.db_connect_timeout,
        connect_args=_pg_connect_args(settings),
    )


T = TypeVar("T")

UNIT_OF_WORK = "hearme_unit_of_work"


@dataclass
class UnitOfWork:
    """What one transaction will do besides its statements, registered by the services
    that run in it.

    - `before_commit`: callbacks run in the transaction, after the services' last flush
      and before COMMIT, each with the session. This is the hook for records that must
      commit or roll back together with the change they describe: the events outbox and
      the audit log write their rows here, so there is never an event or audit record of
      a change that did not happen, nor a change without its record.
    - `after_commit`: callbacks run once the transaction has committed (never after a
      rollback), outside it: for process-local state that must follow committed data
      only, such as forgetting a revoked key in the key cache.

    Register with `before_commit(session, fn)` / `after_commit(session, fn)`.
    """

    before_commit: list[Callable[[Session], None]] = field(default_factory=list)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


def unit_of_work(session: Session) -> UnitOfWork:
    """The unit of work a session belongs to (a bare session gets one of its own)."""
    work = session.info.get(UNIT_OF_WORK)
    if work is None:
        work = session.info[UNIT_OF_WORK] = UnitOfWork()
    assert isinstance(work, UnitOfWork)
    return work


def before_commit(session: Session, callback: Callable[[Session], None]) -> None:
    unit_of_work(session).before_commit.append(callback)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    unit_of_work(session).after_commit.append(callback)


@dataclass
class _Turns:
    """Where this process's requests wait for the database: in the event loop, holding
    no worker thread and no connection."""

    slots: Semaphore  # one per pooled connection
    writer: Lock | None  # SQLite only: one write transaction at a time


_turns: RunVar["WeakKeyDictionary[Database, _Turns]"] = RunVar("hearme_db_turns")


class Database:
    """The engine of one process, with separate read and write views of its pool, and the
    one way to run a transaction on it."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_db_engine(settings)
        self.write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self.dialect = self.engine.dialect.name
        self.pool_size = settings.db_pool_size

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """One unit of work: commit on success (after its `before_commit` callbacks, then
        its `after_commit` ones), roll back on any error. Synchronous: in the server it
        runs in a worker thread, after `turn()`."""
        with session_scope(self.write_engine if write else self.engine) as session:
            yield session

    def _turns(self) -> _Turns:
        """This database's turns in the running event loop."""
        try:
            by_database = _turns.get()
        except LookupError:
            by_database = WeakKeyDictionary()
            _turns.set(by_database)
        turns = by_database.get(self)
        if turns is None:
            writer = Lock() if self.dialect == "sqlite" else None
            turns = by_database[self] = _Turns(Semaphore(self.pool_size), writer)
        return turns

    @asynccontextmanager
    async def turn(self, *, write: bool) -> AsyncIterator[None]:
        """Wait, in the event loop, for a turn at the database.

        A request holding a connection may still need worker threads to finish (its
        dependencies and route each take one in turn). Were requests to wait for a
        connection inside a thread, with more requests in flight than connections, the
        waiters could take every thread while the holders need one: all stall until the
        pool times out (500s). So requests first wait here, FIFO, for a slot (at most
        `db_pool_size` at once, so a checkout never waits and no overflow connection is
        opened and closed per request), and on SQLite, writers also for their turn: a
        write transaction holds the database's one write lock from its first statement
        (BEGIN IMMEDIATE) to its commit, and writers queued here are handed it at once
        rather than found by SQLite's sleeping busy handler. Other processes are still
        kept out by SQLite's own lock.
        """
        turns = self._turns()
        writer = turns.writer if write and turns.writer is not None else nullcontext()
        async with writer, turns.slots:
            yield

    async def run(self, work: Callable[..., T], /, *args: Any, write: bool, **kwargs: Any) -> T:
        """`work(session, *args, **kwargs)` in one unit of work, start to finish in one
        worker thread once this caller has its turn: the transaction (and on SQLite the
        write lock) is held for that stretch alone, not across the hops of a request."""

        def in_unit_of_work() -> T:
            with self.session(write=write) as session:
                return work(session, *args, **kwargs)

        async with self.turn(write=write):
            return await to_thread.run_sync(in_unit_of_work)

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success (its `before_commit` callbacks run first, in
    the transaction; its `after_commit` ones after), roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        work = unit_of_work(session)
        try:
            yield session
            for callback in work.before_commit:
                callback(session)
            session.commit()
        except BaseException:
            session.rollback()
            raise
    for done in work.after_commit:
        done()


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel, or the repository's `alembic/`."""
    packaged = Path(__file__).parent / "migrations"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "alembic"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Migrate the database to head; creates an embedded SQLite file on first use."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), "head")


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
