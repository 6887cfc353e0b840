"""Multi-row writes of the hot path as driver statements, compiled once.

Group commit stores a batch of submissions with a handful of INSERTs. Built as SQLAlchemy
statements, each execution compiles or looks up its cache key, makes a parameter dict per
row and walks every bind's type: in the writer thread that was more CPU than the database
itself spent, and it held the GIL the event loop needs. An `Insert` here renders its SQL
once per dialect and row count, converts only the values whose column type has a bind
processor (the timestamps and JSON columns, with the column's own processor, so what is
stored is byte for byte what SQLAlchemy would store; or JSON text given as `Json`), and runs through
`Connection.exec_driver_sql` on the session's connection: in the unit of work's
transaction, with SQLAlchemy's error wrapping and events, but none of its compilation.

- SQLite, no RETURNING: one prepared single-row statement and the driver's
  `executemany` (its loop is C, and SQLite releases the GIL while it steps).
- SQLite with RETURNING: one multi-row `VALUES` statement (chunked under SQLite's limit
  on bound parameters).
- PostgreSQL: `INSERT ... SELECT FROM unnest(...)`, one array per column: one round trip
  and one short statement for the whole batch.

An `Update` sets columns of many rows, each found by its own values of a few columns, the
same way: the driver's `executemany` of one prepared statement on SQLite (one primary-key
search per row), `UPDATE ... FROM unnest(...)` on PostgreSQL.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Float, Table
from sqlalchemy.engine import Dialect
from sqlmodel import Session

MAX_PARAMETERS = 30_000  # SQLite allows 32,766 bound parameters


class Json(str):
    """JSON text already serialised, for a JSON column: stored as it is (the column's
    serialiser is skipped), so a body serialised once for the answer serves the row too."""


def _unless_serialised(process: Any) -> Any:
    def convert(value: Any) -> Any:
        return str(value) if type(value) is Json else process(value)

    return convert


@dataclass(frozen=True)
class _Prepared:
    sql: str  # SQLite: the head (up to VALUES); PostgreSQL: the whole statement
    row: str  # SQLite: one row's placeholders
    processors: tuple[tuple[int, Any], ...]  # (column index, value -> driver value)


def _bind(kind: Any, dialect: Dialect) -> Any:
    """The column type's own conversion to the driver's value (None if it needs none)."""
    return kind.dialect_impl(dialect).bind_processor(dialect)


def _convert(values: list[Any], processors: Sequence[tuple[int, Any]]) -> list[Any]:
    """The rows with each processed column converted; a value that repeats the row
    before's (a batch's one timestamp, usually) converted once."""
    if not processors:
        return values
    out = []
    last: list[tuple[Any, Any]] = [(None, None)] * len(processors)
    for value in values:
        converted = list(value)
        for n, (i, process) in enumerate(processors):
            given = converted[i]
            if given is None:
                continue
            before, done = last[n]
            if given is not before:
                done = process(given)
                last[n] = (given, done)
            converted[i] = done
        out.append(tuple(converted))
    return out


class Insert:
    """`INSERT INTO table (columns) ...[ suffix]` for rows given as mappings with (at
    least) those keys. `suffix` is SQL common to both engines (ON CONFLICT ...,
    RETURNING ...); `returns` says whether it returns rows."""

    def __init__(
        self,
        table: Table,
        columns: Sequence[str],
        *,
        suffix: str = "",
        returns: bool = False,
        computed: Mapping[str, str] | None = None,
        wrap: str = "{}",
    ) -> None:
        """PostgreSQL only, `computed` gives more columns as SQL expressions evaluated per
        row (a sequence's `nextval`), and `wrap` a statement around the INSERT (`{}`), for
        a data-modifying CTE that does one more thing in the same round trip."""
        self.table = table
        self.columns = tuple(columns)
        self.suffix = f" {suffix}" if suffix else ""
        self.returns = returns
        self.computed = dict(computed or {})
        self.wrap = wrap
        self._get = itemgetter(*self.columns)
        self._by_dialect: dict[str, _Prepared] = {}
        self._sql: dict[int, str] = {}  # SQLite with RETURNING: the statement per row count

    def _prepared(self, dialect: Dialect) -> _Prepared:
        found = self._by_dialect.get(dialect.name)
        if found is None:
            found = self._by_dialect[dialect.name] = self._prepare(dialect)
        return found

    def _prepare(self, dialect: Dialect) -> _Prepared:
        quote = dialect.identifier_preparer.quote
        if dialect.name != "postgresql" and (self.computed or self.wrap != "{}"):
            raise ValueError("computed columns and wrapping are for PostgreSQL only")
        names = ", ".join(map(quote, (*self.columns, *self.computed)))
        # identifiers from the table's metadata, values bound: nothing from a request
        head = f"INSERT INTO {quote(self.table.name)} ({names})"
        processors: list[tuple[int, Any]] = []
        if dialect.name != "postgresql":
            for i, name in enumerate(self.columns):
                kind = self.table.c[name].type
                process = _bind(kind, dialect)
                if process is not None:
                    if isinstance(kind, JSON):
                        process = _unless_serialised(process)
                    processors.append((i, process))
            row = f"({', '.join('?' for _ in self.columns)})"
            return _Prepared(head + " VALUES ", row, tuple(processors))
        # PostgreSQL: one array per column, unnested (a short statement text whatever the
        # row count: psycopg parses it once, and the server can keep it prepared), sent in
        # binary (`%b`: psycopg's text format escapes every element with a regex, a third
        # of the batch's driver time). JSON travels as text, serialised as SQLAlchemy's
        # JSON type would (json.dumps).
        arrays, selected = [], []
        for i, name in enumerate(self.columns):
            kind = self.table.c[name].type
            if isinstance(kind, JSON):
                dumps = getattr(dialect, "_json_serializer", None) or json.dumps
                processors.append((i, _unless_serialised(dumps)))
                arrays.append("%b::text[]")
                selected.append(f"CAST(u{i} AS JSON)")
                continue
            convert: Any = _bind(kind, dialect)
            if isinstance(kind, Float):  # an array has one element type: 3 and 3.5 as floats
                convert = float
            if convert is not None:
                processors.append((i, convert))
            arrays.append(f"%b::{kind.compile(dialect=dialect)}[]")
            selected.append(f"u{i}")
        selected += self.computed.values()  # our own SQL, never from a request
        sql = (
            f"{head} SELECT {', '.join(selected)} FROM unnest({', '.join(arrays)})"  # noqa: S608
            f" AS u({', '.join(f'u{i}' for i in range(len(self.columns)))}){self.suffix}"
        )
        return _Prepared(self.wrap.format(sql), "", tuple(processors))

    def _tuples(self, rows: Sequence[Mapping[str, Any]], processors: Sequence[Any]) -> list[Any]:
        get = self._get
        values = [(get(row),) for row in rows] if len(self.columns) == 1 else list(map(get, rows))
        return _convert(values, processors)

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Insert `rows` in the session's transaction; the returned rows (in the order the
        database gives them), or [] without RETURNING."""
        if not rows:
            return []
        connection = session.connection()
        prepared = self._prepared(connection.dialect)
        values = self._tuples(rows, prepared.processors)
        if connection.dialect.name == "postgresql":
            columns = [list(column) for column in zip(*values, strict=True)]
            result = connection.exec_driver_sql(prepared.sql, tuple(columns))
            return list(result.all()) if self.returns else []
        if not self.returns:
            connection.exec_driver_sql(prepared.sql + prepared.row + self.suffix, values)
            return []
        returned: list[Any] = []
        chunk = max(1, MAX_PARAMETERS // len(self.columns))
        for start in range(0, len(values), chunk):
            part = values[start : start + chunk]
            sql = self._sql.get(len(part))
            if sql is None:
                sql = prepared.sql + ", ".join([prepared.row] * len(part)) + self.suffix
                self._sql[len(part)] = sql
            result = connection.exec_driver_sql(sql, tuple(v for value in part for v in value))
            returned.extend(result.all())
        return returned


class Update:
    """`UPDATE table SET columns WHERE keys = (each row's)[ AND condition]` for rows given
    as mappings with (at least) the keys of `set` and `where`. `condition` is SQL common to
    both engines over the table's own columns, named unqualified (our own text, never
    from a request). For columns of plain types (no JSON, no floats)."""

    def __init__(
        self, table: Table, set: Sequence[str], where: Sequence[str], *, condition: str = ""
    ) -> None:
        self.table = table
        self.names = (*set, *where)
        self.set, self.where, self.condition = tuple(set), tuple(where), condition
        self._get = itemgetter(*self.names)
        self._by_dialect: dict[str, tuple[str, tuple[tuple[int, Any], ...]]] = {}

    def _prepare(self, dialect: Dialect) -> tuple[str, tuple[tuple[int, Any], ...]]:
        quote = dialect.identifier_preparer.quote
        table = quote(self.table.name)
        kinds = [self.table.c[name].type for name in self.names]
        processors = tuple(
            (i, process) for i, kind in enumerate(kinds) if (process := _bind(kind, dialect))
        )
        extra = f" AND {self.condition}" if self.condition else ""
        if dialect.name != "postgresql":
            sets = ", ".join(f"{quote(name)} = ?" for name in self.set)
            keys = " AND ".join(f"{quote(name)} = ?" for name in self.where)
            return f"UPDATE {table} SET {sets} WHERE {keys}{extra}", processors  # noqa: S608
        sets = ", ".join(f"{quote(name)} = v.u{i}" for i, name in enumerate(self.set))
        keys = " AND ".join(
            f"{table}.{quote(name)} = v.u{i}"
            for i, name in enumerate(self.names)
            if i >= len(self.set)
        )
        arrays = ", ".join(f"%b::{kind.compile(dialect=dialect)}[]" for kind in kinds)
        aliases = ", ".join(f"u{i}" for i in range(len(self.names)))
        sql = f"UPDATE {table} SET {sets} FROM unnest({arrays}) AS v({aliases}) WHERE {keys}{extra}"  # noqa: S608
        return sql, processors

    def execute(self, session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
        """Update the rows in the session's transaction."""
        if not rows:
            return
        connection = session.connection()
        found = self._by_dialect.get(connection.dialect.name)
        if found is None:
            found = self._by_dialect[connection.dialect.name] = self._prepare(connection.dialect)
        sql, processors = found
        values = _convert(list(map(self._get, rows)), processors)
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(sql, tuple(map(list, zip(*values, strict=True))))
        else:
            connection.exec_driver_sql(sql, values)
