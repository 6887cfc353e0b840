"""Planner statistics kept up as a study grows (`service.table_stats`)."""

import time
from typing import Any

from sqlalchemy import Engine, text

from service import table_stats
from service.database import Database


class _Recording(table_stats.Keeper):
    """A keeper that notes when it would analyze instead of analyzing."""

    def __init__(self, first: int) -> None:
        super().__init__(first)
        self.runs: list[int] = []

    def _analyze(self, engine: Engine) -> None:
        self.runs.append(self._stored)
        with self._lock:
            self._running = False


class _PostgresEngine:
    class dialect:
        name = "postgresql"


def test_it_analyzes_each_time_the_stored_responses_double() -> None:
    keeper = _Recording(first=10)
    engine: Any = _PostgresEngine()
    for count in (3, 6, 1, 9, 1, 19, 1, 60):  # running totals 3 9 10 19 20 39 40 100
        keeper.stored(engine, count)
        time.sleep(0.05)  # its thread
    assert keeper.runs == [10, 20, 40, 100]


def _analyze_counts(database: Database) -> dict[str, int]:
    with database.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT relname, analyze_count FROM pg_stat_user_tables"
                " WHERE relname IN ('response', 'answer')"
            )
        )
        return {name: int(count) for name, count in rows}


def test_analyze_runs_on_postgresql_and_not_on_sqlite(database: Database) -> None:
    keeper = table_stats.Keeper(first=1)
    if database.dialect != "postgresql":
        keeper.stored(database.engine, 1)
        assert not keeper._running  # nothing started
        return
    before = _analyze_counts(database)
    keeper.stored(database.engine, 1)
    deadline = time.monotonic() + 20
    after = before
    while time.monotonic() < deadline:
        after = _analyze_counts(database)
        if all(after[name] > before[name] for name in ("response", "answer")):
            break
        time.sleep(0.2)
    assert all(after[name] > before[name] for name in ("response", "answer")), (before, after)
