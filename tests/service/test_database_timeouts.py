"""PostgreSQL time-outs (contract §11): a statement that runs past
HEARME_DB_STATEMENT_TIMEOUT is cancelled by the server, and counts as the database being
unavailable (a 503 to retry), never a hang."""

import time
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from service.database import Database, unreachable
from service.settings import Settings


@pytest.fixture
def pg_url(_migrated: Callable[[str], str]) -> str:
    """The PostgreSQL test database (a server-side time-out is PostgreSQL's alone)."""
    return _migrated("postgresql")


def test_a_statement_past_the_timeout_is_cancelled(pg_url: str) -> None:
    database = Database(Settings(database_url=pg_url, db_statement_timeout=1))
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError) as caught, database.session() as session:
            session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 4
        assert unreachable(caught.value)
        with database.session() as session:  # the pool is still good
            assert session.execute(text("SELECT 1")).scalar() == 1
    finally:
        database.dispose()


def test_no_statement_timeout_when_it_is_zero(pg_url: str) -> None:
    database = Database(Settings(database_url=pg_url, db_statement_timeout=0))
    try:
        with database.session() as session:
            assert session.execute(text("SHOW statement_timeout")).scalar() == "0"
    finally:
        database.dispose()
