"""The statistics cells and narrow rows stay exact under concurrent writes to a real server.

Two worker processes take submissions, erasures and codings at once; the cells they
maintain by upsert (and the narrow rows they insert and delete) must end equal to a
recount from the stored rows, and the published
statistics equal to counts made here from what the server acknowledged. Each worker
holds its own in-memory copy of the narrow rows (`service/stats/columns.py`), loaded
before the writes and read during them: every answer afterwards, from either worker (on
a new connection each, so both answer), must be exact.
"""

import random
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from service.database import Database
from service.settings import Settings
from tests.conftest import CODEBOOK_THEMES, submission, survey_definition
from tests.server.conftest import StartServer
from tests.service.test_stat_cells import assert_cells_exact

SUBMISSIONS = 160
THREADS = 8


def test_cells_exact_after_concurrent_submissions_erasures_and_codings(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    server = start_server(fresh_database(engine), workers=2)
    admin = server.create_key(name="admin", role="admin")
    coder = server.create_key(name="coder-a", role="coder")
    with server.client(admin) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        book = client.put(
            "/v1/surveys/trust/codebooks/trust_actions", json={"themes": CODEBOOK_THEMES}
        )
        assert book.status_code == 200, book.text

    rng = random.Random(11)
    bodies = [
        submission(
            role=rng.choice(["police", "health", "other"]),
            trust_confidence=rng.randint(1, 5),
            involved=rng.random() < 0.5,
            trust_actions="Listen and take time.",
        )
        | {"site": rng.choice(["site-1", "site-2"])}
        for _ in range(SUBMISSIONS)
    ]
    narrow_params = (("q.role", "police"), ("q.role", "health"), ("q.involved", "true"))
    narrow_path = "/v1/surveys/trust/stats/likert/trust_confidence"
    themes_path = "/v1/surveys/trust/stats/themes/trust_actions"
    themes_params = (("q.role", "police"), ("q.involved", "true"))

    def fresh_reads() -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """Both statistics, each on a connection of its own, many times over: the two
        workers both answer (and load or catch up their copies)."""
        found = []
        for _ in range(12):
            with server.client(admin) as one:  # a client of its own: a new connection
                narrowed = one.get(narrow_path, params=(*narrow_params, ("by", "site")))
                themed = one.get(themes_path, params=themes_params)
            assert narrowed.status_code == themed.status_code == 200, narrowed.text
            found.append((narrowed.json(), themed.json()))
        return found

    fresh_reads()  # the copies load now, before the writes: afterwards they catch up
    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with (
        server.client(admin, limits=limits) as as_admin,
        server.client(coder, limits=limits) as as_coder,
        ThreadPoolExecutor(THREADS) as pool,
    ):

        def work(n: int) -> tuple[dict[str, Any], bool]:
            """Submit; code every third answer; erase every fifth response."""
            posted = as_admin.post("/v1/surveys/trust/responses", json=bodies[n])
            assert posted.status_code == 201, posted.text
            response_id = posted.json()["id"]
            path = f"/v1/surveys/trust/responses/{response_id}"
            if n % 3 == 0:
                coded = as_coder.put(
                    path + "/codings/trust_actions", json={"categories": ["listening", "time"]}
                )
                assert coded.status_code == 200, coded.text
            if n % 5 == 0:
                assert as_admin.delete(path).status_code == 204
                return bodies[n], False
            if n % 4 == 0:  # reads among the writes: the copies catch up as they go
                read = as_admin.get(narrow_path, params=narrow_params)
                assert read.status_code == 200, read.text
            return bodies[n], True

        outcomes = list(pool.map(work, range(SUBMISSIONS)))

    database = Database(Settings(database_url=server.database_url))
    try:
        assert_cells_exact(database)
    finally:
        database.dispose()

    kept = [body for body, alive in outcomes if alive]
    coded_kept = [n for n, (_, alive) in enumerate(outcomes) if alive and n % 3 == 0]
    with server.client(admin) as client:
        role = client.get("/v1/surveys/trust/stats/composition/role?by=site").json()
        themes = client.get("/v1/surveys/trust/stats/themes/trust_actions").json()
        # two filters and a group: read from the narrow rows
        narrowed = client.get(
            "/v1/surveys/trust/stats/likert/trust_confidence",
            params=[
                ("q.role", "police"),
                ("q.role", "health"),
                ("q.involved", "true"),
                ("by", "site"),
            ],
        ).json()
    assert role["n"] == len(kept)
    assert {r["value"]: r["count"] for r in role["rows"]} == Counter(
        body["answers"]["role"] for body in kept
    )
    for group in role["groups"]:
        here = [b for b in kept if b["site"] == group["value"]]
        assert {r["value"]: r["count"] for r in group["rows"]} == Counter(
            b["answers"]["role"] for b in here
        ) | {r["value"]: 0 for r in group["rows"] if r["count"] == 0}
    assert (themes["n_responses"], themes["n_coded"]) == (len(kept), len(coded_kept))
    counted = {c["id"]: c["respondents"] for t in themes["themes"] for c in t["categories"]}
    assert counted == {
        "rapport": 0,
        "time": len(coded_kept),
        "listening": len(coded_kept),
        "honest": 0,
    }

    scoped = [
        b for b in kept if b["answers"]["role"] in ("police", "health") and b["answers"]["involved"]
    ]
    police = [n for n in coded_kept if bodies[n]["answers"]["role"] == "police"]
    police_coded = [n for n in police if bodies[n]["answers"]["involved"]]
    police_kept = [b for b in kept if b["answers"]["role"] == "police" and b["answers"]["involved"]]
    for likert, themed in [(narrowed, None), *fresh_reads()]:
        assert likert["n"] == len(scoped)
        for group in likert["groups"]:
            points = Counter(
                s["answers"]["trust_confidence"] for s in scoped if s["site"] == group["value"]
            )
            assert {r["value"]: r["count"] for r in group["rows"]} == {
                v: points[v] for v in range(1, 6)
            }
        if themed is not None:  # two filters on a coded question: its statuses and themes
            assert (themed["n_responses"], themed["n_coded"]) == (
                len(police_kept),
                len(police_coded),
            )
            counted = {c["id"]: c["respondents"] for t in themed["themes"] for c in t["categories"]}
            assert counted == {
                "rapport": 0,
                "time": len(police_coded),
                "listening": len(police_coded),
                "honest": 0,
            }
