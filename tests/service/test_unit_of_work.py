"""The unit of work (`service.database`): it alone commits, and its hooks run inside the
transaction (before_commit) or only once it has committed (after_commit)."""

import pytest
from sqlmodel import Session, select

from schemas.keys import ApiKey, KeyCreate, Role
from service.database import Database, after_commit, before_commit
from service.keys import create_key


def _names(database: Database) -> set[str]:
    with database.session(write=False) as session:
        return set(session.exec(select(ApiKey.name)))


def test_before_commit_writes_in_the_same_transaction(database: Database) -> None:
    committed: list[str] = []

    def record(session: Session) -> None:
        # stands for an outbox or audit row: written beside the change, committed with it
        create_key(session, data=KeyCreate(name="written-before-commit", role=Role.reader))

    with database.session() as session:
        create_key(session, data=KeyCreate(name="the-change", role=Role.reader))
        before_commit(session, record)
        after_commit(session, lambda: committed.append("done"))
    assert _names(database) == {"the-change", "written-before-commit"}
    assert committed == ["done"]


def test_a_failed_unit_of_work_keeps_nothing_and_runs_no_after_commit(
    database: Database,
) -> None:
    committed: list[str] = []

    def record(session: Session) -> None:
        create_key(session, data=KeyCreate(name="record", role=Role.reader))
        raise RuntimeError("the record could not be written")

    def work() -> None:
        with database.session() as session:
            create_key(session, data=KeyCreate(name="the-change", role=Role.reader))
            before_commit(session, record)
            after_commit(session, lambda: committed.append("done"))

    with pytest.raises(RuntimeError):
        work()
    assert _names(database) == set()
    assert committed == []
