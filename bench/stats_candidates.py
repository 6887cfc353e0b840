"""The designs issue 15 weighed, side by side on N synthetic responses (default 1M):
a narrow table scanned by one filtered GROUP BY (SQLite and PostgreSQL), a
covering-index join over answer rows (SQLite), and roaring bitmaps in process memory
(only if `pyroaring` is installed; it is not a dependency). Prints p50 of 7 runs each.
The figures are in bench/README.md ("Issue 15").

    python bench/stats_candidates.py [N]
"""

import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg

PG = os.environ.get("HEARME_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
COLUMNS = {
    "site": 3, "wave": 2, "role": 10, "gender": 4, "age": 6,
    "eth": 8, "years": 5, "inv": 2, "conf": 5,
}  # fmt: skip
SHAPES = {
    "two filters": "SELECT conf, COUNT(*) FROM narrow WHERE survey_id = 's'"
    " AND role = 3 AND gender = 2 GROUP BY conf",
    "a filter, by a question": "SELECT gender, conf, COUNT(*) FROM narrow"
    " WHERE survey_id = 's' AND role = 3 GROUP BY gender, conf",
    "three filters, by site": "SELECT site, role, COUNT(*) FROM narrow WHERE survey_id = 's'"
    " AND inv = 1 AND conf IN (4, 5) GROUP BY site, role",
    "three filters, by site, one key": "SELECT site * 16 + role, COUNT(*) FROM narrow"
    " WHERE survey_id = 's' AND inv = 1 AND conf IN (4, 5) GROUP BY 1",
    "two filters, pivot": "SELECT "
    + ", ".join(f"SUM(CASE WHEN conf = {v} THEN 1 ELSE 0 END)" for v in range(1, 6))
    + " FROM narrow WHERE survey_id = 's' AND role = 3 AND gender = 2",
}
JOIN = (
    "SELECT l.v, COUNT(*) FROM ans r"
    " JOIN ans g ON g.response_pk = r.response_pk AND g.q = 'gender' AND g.v = 2"
    " JOIN ans l ON l.response_pk = r.response_pk AND l.q = 'conf'"
    " WHERE r.q = 'role' AND r.v = 3 GROUP BY l.v"
)


def p50(call: Callable[[], Any], runs: int = 7) -> float:
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def fetch(conn: Any, sql: str) -> list[Any]:
    return list(conn.execute(sql).fetchall())


def show(where: str, name: str, ms: float) -> None:
    print(f"{where:<11} {name:<42} {ms:8.2f} ms", flush=True)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    rng = random.Random(1)
    names = list(COLUMNS)
    rows = [(i, *[rng.randint(1, k) for k in COLUMNS.values()]) for i in range(1, n + 1)]
    create = (
        "CREATE TABLE narrow (survey_id VARCHAR(64), response_pk BIGINT, "
        + ", ".join(f"{c} SMALLINT" for c in names)
        + ", PRIMARY KEY (survey_id, response_pk))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        lite = sqlite3.connect(os.path.join(tmp, "candidates.db"))
        lite.execute(create + " WITHOUT ROWID")
        marks = ", ".join("?" * (len(names) + 1))
        lite.executemany(f"INSERT INTO narrow VALUES ('s', {marks})", rows)
        lite.execute("CREATE TABLE ans (response_pk INTEGER, q TEXT, v INTEGER)")
        lite.executemany(
            "INSERT INTO ans VALUES (?, ?, ?)",
            (
                (r[0], c, r[i + 1])
                for r in rows
                for i, c in enumerate(names)
                if c in ("role", "gender", "conf")
            ),
        )
        lite.execute("CREATE INDEX ix_ans ON ans (q, v, response_pk)")
        lite.execute("CREATE INDEX ix_ans_pk ON ans (response_pk, q, v)")
        lite.commit()
        lite.execute("ANALYZE")
        for name, sql in SHAPES.items():
            show("sqlite", f"narrow, {name}", p50(partial(fetch, lite, sql)))
        show(
            "sqlite",
            "covering-index join, two filters",
            p50(partial(fetch, lite, JOIN), 3),
        )
        lite.close()
    try:
        from pyroaring import BitMap
    except ImportError:
        print("roaring     (pyroaring not installed: skipped)")
    else:
        found: dict[tuple[str, int], list[int]] = {}
        for r in rows:
            for i, c in enumerate(names):
                found.setdefault((c, r[i + 1]), []).append(r[0])
        maps = {k: BitMap(v) for k, v in found.items()}

        def two() -> list[int]:
            scope = maps[("role", 3)] & maps[("gender", 2)]
            return [scope.intersection_cardinality(maps[("conf", v)]) for v in range(1, 6)]

        def grouped() -> list[list[int]]:
            scope = maps[("role", 3)]
            return [
                [(scope & maps[("gender", g)]).intersection_cardinality(maps[("conf", v)])
                 for v in range(1, 6)]
                for g in range(1, 5)
            ]  # fmt: skip

        show("roaring", "two filters", p50(two))
        show("roaring", "a filter, by a question", p50(grouped))
    with psycopg.connect(PG, autocommit=True) as admin:
        admin.execute("DROP DATABASE IF EXISTS hearme_stats_candidates")
        admin.execute("CREATE DATABASE hearme_stats_candidates")
    try:
        url = PG.rsplit("/", 1)[0] + "/hearme_stats_candidates"
        with psycopg.connect(url, autocommit=True) as pg:
            pg.execute(create)
            with pg.cursor().copy("COPY narrow FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(("s", *r))
            pg.execute("VACUUM ANALYZE narrow")
            for name, sql in SHAPES.items():
                show("postgresql", f"narrow, {name}", p50(partial(fetch, pg, sql)))
            pg.execute("SET max_parallel_workers_per_gather = 0")
            for name in ("two filters", "three filters, by site"):
                sql = SHAPES[name]
                show(
                    "postgresql",
                    f"narrow, {name}, no parallel",
                    p50(partial(fetch, pg, sql)),
                )
    finally:
        with psycopg.connect(PG, autocommit=True) as admin:
            admin.execute("DROP DATABASE IF EXISTS hearme_stats_candidates")


if __name__ == "__main__":
    main()
