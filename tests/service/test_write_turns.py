"""SQLite's write turn between processes (`service.database._WriteTurns`): a write
transaction holds the lock file from BEGIN to the end of its COMMIT or ROLLBACK, and no
longer, whatever way it ends."""

import fcntl
import os
from pathlib import Path

import pytest
from sqlalchemy import text

from service.database import Database
from service.settings import Settings


def _free(path: str) -> bool:
    """Whether another holder could take the lock file now."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


@pytest.fixture
def sqlite(tmp_path: Path) -> Database:
    return Database(Settings(database_url=f"sqlite:///{tmp_path / 'turns.db'}"))


def test_a_write_transaction_holds_the_turn_until_it_commits(
    sqlite: Database, tmp_path: Path
) -> None:
    lock = f"{(tmp_path / 'turns.db').resolve()}-hearme.lock"
    with sqlite.session(write=True) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
        assert not _free(lock)
    assert _free(lock)

    def failing() -> None:
        with sqlite.session(write=True) as session:
            session.execute(text("INSERT INTO t VALUES (1)"))
            assert not _free(lock)
            raise RuntimeError("the unit of work fails")

    with pytest.raises(RuntimeError):
        failing()
    assert _free(lock)  # rolled back: released too
    with sqlite.session(write=False) as session:  # reads never take it
        assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 0
        assert _free(lock)


def test_a_begin_that_fails_gives_the_turn_back(sqlite: Database, tmp_path: Path) -> None:
    """BEGIN IMMEDIATE refused (another program holds SQLite's own lock past the busy
    time-out): no transaction began, so nothing would commit or roll back to release it."""
    lock = f"{(tmp_path / 'turns.db').resolve()}-hearme.lock"
    with sqlite.session(write=True) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    other = Database(Settings(database_url=f"sqlite:///{tmp_path / 'turns.db'}"))
    raw = other.engine.raw_connection()  # SQLite's lock, without the lock file
    raw.execute("PRAGMA busy_timeout=0")
    raw.execute("BEGIN IMMEDIATE")
    try:
        fast = Database(Settings(database_url=f"sqlite:///{tmp_path / 'turns.db'}"))
        with fast.engine.connect() as connection:  # the pool's one connection, reused below
            connection.exec_driver_sql("PRAGMA busy_timeout=0")

        def insert() -> None:
            with fast.session(write=True) as session:
                session.execute(text("INSERT INTO t VALUES (1)"))

        with pytest.raises(Exception, match="locked"):
            insert()
        assert _free(lock)
    finally:
        raw.rollback()
        raw.close()
