"""Commit order: numbers that a reader can follow with `> watermark` and never miss one.

A number drawn when a row is written does not follow commit order on PostgreSQL: a
transaction that drew 7 can commit after one that drew 8, and a reader who has passed 8
never sees 7. So numbers are drawn at the very end of a transaction (a `before_commit`
callback), under one transaction-level advisory lock taken by `take_turn`. PostgreSQL
releases it only after the commit is visible, so a transaction that draws a higher number
necessarily becomes visible later: once a reader sees number P, every lower number is
visible or will never exist (a rollback leaves a gap, never a late arrival). On SQLite
write transactions begin IMMEDIATE: one writer at a time, so any number drawn inside one
is in commit order already.

The events outbox (`service/events/outbox.py`: feed positions) and the narrow rows'
sequence (`service/stats/narrow.py`, followed by each process's copy in
`service/stats/columns.py`) draw under this one lock; a transaction that does both takes
it once and holds it for both.
"""

from typing import Any

from sqlalchemy import TextClause, text
from sqlmodel import Session

POSITION_LOCK = 0x6865_6172_6D65  # "hearme"
_LOCK = text("SELECT pg_advisory_xact_lock(:key)")


def postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


_TAKEN = "hearme_commit_turn"  # in session.info: the transaction that holds the turn


def _holds(session: Session) -> None:
    """Note that the session's current transaction holds the turn (until it ends)."""
    session.info[_TAKEN] = session.get_transaction()


def draw_pg(session: Session, sequence: str) -> int:
    """PostgreSQL: take the turn and draw the next number of `sequence`, in one round
    trip (the lock, in a subquery, is taken before the number is drawn)."""
    found = session.execute(_DRAW, {"key": POSITION_LOCK, "sequence": sequence})
    _holds(session)
    return int(found.scalar_one())


_DRAW = text(
    "SELECT nextval(CAST(:sequence AS regclass)) FROM (SELECT pg_advisory_xact_lock(:key)) AS turn"
)


def take_turn(session: Session) -> None:
    """Before drawing numbers in a `before_commit` callback: wait for the turn to commit
    (PostgreSQL; a no-op on SQLite, whose write transaction already holds it). Taking
    it again in the same transaction costs no round trip: the transaction holds it until
    it ends (the session's next transaction is another object, and takes it again)."""
    if postgres(session) and session.info.get(_TAKEN) is not session.get_transaction():
        session.execute(_LOCK, {"key": POSITION_LOCK})
        _holds(session)


# PostgreSQL: the draw as a scalar subquery (an InitPlan, evaluated once per statement, and
# only when a row needs it), for a statement that stamps rows with the number it draws.
DRAWN = (
    "(SELECT nextval(CAST(:sequence AS regclass))"
    " FROM (SELECT pg_advisory_xact_lock(:key)) AS turn)"
)


def stamp_pg(session: Session, statement: TextClause, params: dict[str, Any]) -> int | None:
    """PostgreSQL: run `statement`, an UPDATE that sets rows to `DRAWN` and returns the
    number (`RETURNING`), in one round trip; the number, or None when no row was updated
    (then neither the turn was taken nor a number drawn)."""
    number = session.execute(statement, {**params, "key": POSITION_LOCK}).scalars().first()
    if number is None:
        return None
    _holds(session)
    return int(number)
