"""Planner statistics that keep up with a study growing from nothing (PostgreSQL).

PostgreSQL plans each statement from table statistics, which autovacuum refreshes once
the table has grown by a tenth, and at most once a minute (its naptime). A study whose
first thousands of submissions arrive within that minute is planned as if its tables
were empty: the writer's statements, which look up one batch's rows by key, become
sequential scans, and each batch is slower than the last (measured: the cells' upkeep of
a 16-response batch took 46 ms at 7,000 responses without statistics, 3 ms with them).

So each process analyzes the tables that submissions grow whenever the responses it has
stored since it started double, from `FIRST`: a dozen ANALYZEs over a study's life (each
samples at most 30,000 rows a table, a fraction of a second), in a thread of their own
so no batch waits for one. Past that, autovacuum's own thresholds keep up. Several
processes may analyze the same tables; that is harmless. SQLite is left alone: without
statistics its planner prefers the indexes these lookups use.
"""

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

TABLES = (
    "response",
    "answer",
    "stat_row",
    "stat_cell",
    "idempotency_record",
    "event",
    "audit_record",
)
FIRST = 1000
LOCK_TIMEOUT = "200ms"


class Keeper:
    """Counts the responses this process stored; ANALYZE each time the count doubles."""

    def __init__(self, first: int = FIRST) -> None:
        self._lock = threading.Lock()
        self._stored = 0
        self._next = first
        self._running = False

    def stored(self, engine: Engine, count: int) -> None:
        """After a commit that stored `count` responses on `engine`."""
        if engine.dialect.name != "postgresql":
            return
        with self._lock:
            self._stored += count
            if self._stored < self._next or self._running:
                return
            while self._next <= self._stored:
                self._next *= 2
            self._running = True
        threading.Thread(
            target=self._analyze, args=(engine,), name="hearme-analyze", daemon=True
        ).start()

    def _analyze(self, engine: Engine) -> None:
        """One table per statement, each its own transaction (autocommit), so this never
        holds one table's lock while waiting for another's (an ANALYZE of several tables
        in one transaction deadlocked with a TRUNCATE); and it waits `LOCK_TIMEOUT` at
        most for a table that other work holds (a migration, a TRUNCATE), then skips it."""
        try:
            options = {"isolation_level": "AUTOCOMMIT"}
            with engine.connect().execution_options(**options) as connection:
                connection.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
                for table in TABLES:
                    try:
                        connection.exec_driver_sql(f"ANALYZE {table}")  # our own names
                    except DBAPIError as exc:
                        if exc.connection_invalidated:
                            raise
                        log.info("skipped analyzing %s: %s", table, type(exc.orig).__name__)
        except Exception as exc:  # statistics are an optimisation: never a failed request
            log.warning("could not analyze the tables: %s", type(exc).__name__)
        finally:
            with self._lock:
                self._running = False


KEEPER = Keeper()
