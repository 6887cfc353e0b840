"""The driver statements of `service.bulk` against a table of their own, on each engine:
what they store is what SQLAlchemy's own statements would store, a value repeated from
row to row included, and an `Update` changes exactly the rows its keys and condition
select."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select

from schemas.base import UTCDateTime
from service import bulk
from service.database import Database

METADATA = MetaData()
THINGS = Table(
    "bulk_test_thing",
    METADATA,
    Column("pk", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("note", String(50)),
)
INSERT = bulk.Insert(THINGS, ("pk", "state", "attempt", "at", "note"))
SETTLE = bulk.Update(
    THINGS, ("state", "at", "note"), ("pk", "attempt"), condition="state = 'pending'"
)
T0 = datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def things(database: Database) -> Iterator[Database]:
    METADATA.create_all(database.engine)
    try:
        yield database
    finally:
        METADATA.drop_all(database.engine)


def rows(database: Database) -> dict[int, tuple[str, int, datetime, str | None]]:
    with database.session(write=False) as session:
        found = session.execute(select(THINGS).order_by(THINGS.c.pk)).all()
    return {r.pk: (r.state, r.attempt, r.at, r.note) for r in found}


def test_an_insert_stores_what_sqlalchemy_stores_repeated_values_included(
    things: Database,
) -> None:
    later = T0 + timedelta(seconds=5)
    given: list[dict[str, Any]] = [
        {"pk": 1, "state": "pending", "attempt": 1, "at": T0, "note": None},
        {"pk": 2, "state": "pending", "attempt": 1, "at": T0, "note": "x"},  # the same object
        {"pk": 3, "state": "pending", "attempt": 2, "at": later, "note": None},
        {"pk": 4, "state": "pending", "attempt": 2, "at": T0 + timedelta(0), "note": "y"},
    ]
    with things.session() as session:
        INSERT.execute(session, given)
        session.execute(
            insert(THINGS), [{**row, "pk": row["pk"] + 100} for row in given]
        )  # SQLAlchemy's own
    stored = rows(things)
    assert [stored[n][2] for n in (1, 2, 3, 4)] == [T0, T0, later, T0]
    assert [stored[n][3] for n in (1, 2, 3, 4)] == [None, "x", None, "y"]
    with things.engine.connect() as connection:  # the stored text, byte for byte
        raw = connection.exec_driver_sql(
            "SELECT pk, CAST(at AS VARCHAR(40)) FROM bulk_test_thing ORDER BY pk"
        ).all()
    text_of: dict[int, str] = {pk: text for pk, text in raw}
    assert [text_of[n] for n in (1, 2, 3, 4)] == [text_of[n + 100] for n in (1, 2, 3, 4)]


def test_an_update_changes_only_the_rows_its_keys_and_condition_select(
    things: Database,
) -> None:
    with things.session() as session:
        INSERT.execute(
            session,
            [
                {"pk": 1, "state": "pending", "attempt": 1, "at": T0, "note": "one"},
                {"pk": 2, "state": "pending", "attempt": 2, "at": T0, "note": "two"},
                {"pk": 3, "state": "failed", "attempt": 1, "at": T0, "note": "three"},
                {"pk": 4, "state": "pending", "attempt": 1, "at": T0, "note": "four"},
            ],
        )
    done = T0 + timedelta(minutes=1)
    with things.session() as session:
        SETTLE.execute(
            session,
            [
                {"pk": 1, "attempt": 1, "state": "delivered", "at": done, "note": None},
                {"pk": 2, "attempt": 1, "state": "delivered", "at": done, "note": None},  # stale
                {"pk": 3, "attempt": 1, "state": "delivered", "at": done, "note": None},  # settled
                {"pk": 9, "attempt": 1, "state": "delivered", "at": done, "note": None},  # none
            ],
        )
        SETTLE.execute(session, [])
    assert rows(things) == {
        1: ("delivered", 1, done, None),
        2: ("pending", 2, T0, "two"),
        3: ("failed", 1, T0, "three"),
        4: ("pending", 1, T0, "four"),
    }
