"""Waking the long polls and the webhook dispatcher of this process when events commit.

Commits in this process call `Wakeup.wake` directly (`outbox.on_commit`); on
PostgreSQL a listener thread also LISTENs to the outbox's NOTIFY channel, so a commit in
any process or replica wakes everyone. SQLite has no such channel: waiters poll briefly
(`poll_interval`), which also bounds the wait should a notification ever be lost. A
process that commits no events of its own but must follow those of others at once (the
delivery process of `hearme serve`) asks for `watch=True`: on SQLite a thread then reads
`PRAGMA data_version` every `SQLITE_WATCH` seconds, which changes whenever another
connection has committed (a read of the WAL index in shared memory: no disk I/O, no
lock), and wakes the waiters when it does.

A waiter takes `generation()` before it reads, then `wait(seen, timeout)`: a wake that
happens between its read and its wait is not missed.
"""

import asyncio
import contextlib
import logging
import sqlite3
import threading

import psycopg
from sqlalchemy.engine import make_url

from service.events import outbox

log = logging.getLogger(__name__)

SQLITE_POLL = 0.25
SQLITE_WATCH = 0.02
POSTGRES_POLL = 2.0
RECONNECT_DELAY = 1.0


class Wakeup:
    def __init__(self, database_url: str, *, watch: bool = False) -> None:
        self._url = make_url(database_url)
        self.postgres = self._url.get_backend_name() == "postgresql"
        self._watch = watch and not self.postgres
        self.poll_interval = POSTGRES_POLL if self.postgres else SQLITE_POLL
        self._generation = 0
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        outbox.on_commit(self.wake)
        if self.postgres and self._thread is None:
            self._thread = threading.Thread(target=self._listen, name="hearme-listen", daemon=True)
            self._thread.start()
        elif (
            self._watch
            and self._thread is None
            and self._url.database not in (None, "", ":memory:")
        ):
            self._thread = threading.Thread(target=self._poll, name="hearme-watch", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(ValueError):
            outbox.forget(self.wake)

    def generation(self) -> int:
        return self._generation

    def wake(self) -> None:
        """Safe from any thread."""
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # a loop that has closed
                loop.call_soon_threadsafe(event.set)

    async def wait(self, seen: int, timeout: float) -> None:
        """Until a wake after generation `seen`, or `timeout` seconds."""
        if self._generation != seen or timeout <= 0:
            return
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(entry)
        try:
            if self._generation == seen:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(entry[1].wait(), timeout)
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def _listen(self) -> None:
        """LISTEN on PostgreSQL for commits of other processes; reconnects after errors."""
        dsn = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._stop.is_set():
            try:
                with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {outbox.NOTIFY_CHANNEL}")
                    self.wake()  # anything committed while we were not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            self.wake()
            except psycopg.Error as exc:
                log.warning("event listener lost its connection: %s", type(exc).__name__)
                self._stop.wait(RECONNECT_DELAY)

    def _poll(self) -> None:
        """SQLite, `watch=True`: wake when another connection has committed."""
        assert self._url.database is not None
        while not self._stop.is_set():
            try:
                conn = sqlite3.connect(self._url.database, timeout=30, check_same_thread=False)
                try:
                    last = None
                    while not self._stop.is_set():
                        version = conn.execute("PRAGMA data_version").fetchone()[0]
                        if version != last:
                            if last is not None:
                                self.wake()
                            last = version
                        self._stop.wait(SQLITE_WATCH)
                finally:
                    conn.close()
            except sqlite3.Error as exc:
                log.warning("event watcher failed: %s", type(exc).__name__)
                self._stop.wait(RECONNECT_DELAY)
