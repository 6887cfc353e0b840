"""Concurrency against a real server with two worker processes (contract §5).

Duplicates carrying one Idempotency-Key race each other across processes and must store
exactly one response; distinct submissions under concurrency must all be stored.
"""

import asyncio
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.conftest import submission, survey_definition
from tests.server.conftest import Server, StartServer

ROUNDS = 20
DUPLICATES = 8
DISTINCT = 200
THREADS = 8
# More writers in flight than one worker has threads (anyio's default is 40).
CROWD = 64


def setup_survey(server: Server) -> str:
    token = server.create_key(name="admin", role="admin")
    with server.client(token) as client:
        created = client.post("/v1/surveys", json=survey_definition())
        assert created.status_code == 201, created.text
    return token


def stored_ids(server: Server, token: str) -> list[str]:
    """Every response id, through the API (paged, bounded)."""
    ids: list[str] = []
    cursor: str | None = None
    with server.client(token) as client:
        for _ in range(100):
            params: dict[str, Any] = {"limit": 1000}
            if cursor:
                params["cursor"] = cursor
            page = client.get("/v1/surveys/trust/responses", params=params)
            assert page.status_code == 200, page.text
            ids += [item["id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return ids
    raise AssertionError("too many pages")


def count_rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())
    finally:
        engine.dispose()


async def duplicate_rounds(server: Server, token: str) -> list[list[httpx.Response]]:
    """ROUNDS rounds, each firing DUPLICATES identical requests at once under one key."""
    limits = httpx.Limits(max_connections=DUPLICATES, max_keepalive_connections=DUPLICATES)
    headers = {"Authorization": f"Bearer {token}"}
    rounds: list[list[httpx.Response]] = []
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=30.0
    ) as client:
        for n in range(ROUNDS):
            body = submission(trust_actions=f"Listen, round {n}.", years=n)
            key = {"Idempotency-Key": f"round-{n}"}
            answers = await asyncio.gather(
                *(
                    client.post("/v1/surveys/trust/responses", json=body, headers=key)
                    for _ in range(DUPLICATES)
                )
            )
            rounds.append(list(answers))
    return rounds


def test_concurrent_duplicates_store_one(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    server = start_server(fresh_database(engine), workers=2)
    token = setup_survey(server)

    rounds = asyncio.run(duplicate_rounds(server, token))

    first_ids: list[str] = []
    for n, answers in enumerate(rounds):
        statuses = Counter(a.status_code for a in answers)
        assert statuses == {201: 1, 200: DUPLICATES - 1}, (n, [a.text for a in answers])
        bodies = [a.json() for a in answers]
        assert all(b == bodies[0] for b in bodies), (n, bodies)
        assert bodies[0]["answers"]["trust_actions"] == f"Listen, round {n}."
        first_ids.append(bodies[0]["id"])
    assert len(set(first_ids)) == ROUNDS
    assert sorted(stored_ids(server, token)) == sorted(first_ids)
    assert count_rows(server.database_url, "response") == ROUNDS
    assert count_rows(server.database_url, "idempotency_record") == ROUNDS
    # role, trust_confidence, years and trust_actions: one answer row each, no orphans.
    assert count_rows(server.database_url, "answer") == 4 * ROUNDS


def test_concurrent_distinct_submissions_are_all_stored(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    server = start_server(fresh_database(engine), workers=2)
    token = setup_survey(server)

    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with server.client(token, limits=limits) as client, ThreadPoolExecutor(THREADS) as pool:

        def post(n: int) -> httpx.Response:
            body = submission(trust_actions=f"Answer number {n}.", cases=n)
            return client.post("/v1/surveys/trust/responses", json=body)

        answers = list(pool.map(post, range(DISTINCT)))

    assert [a.status_code for a in answers] == [201] * DISTINCT, [
        a.text for a in answers if a.status_code != 201
    ][:3]
    created = {a.json()["id"]: a.json() for a in answers}
    assert len(created) == DISTINCT
    assert sorted(stored_ids(server, token)) == sorted(created)
    with server.client(token) as client:
        for response_id in list(created)[:: DISTINCT // 10]:
            got = client.get(f"/v1/surveys/trust/responses/{response_id}")
            assert got.status_code == 200, got.text
            assert got.json() == created[response_id]


async def crowd(server: Server, token: str, total: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CROWD, max_keepalive_connections=CROWD)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=60.0
    ) as client:
        return list(
            await asyncio.gather(
                *(
                    client.post(
                        "/v1/surveys/trust/responses", json=submission(trust_actions=f"Crowd {n}.")
                    )
                    for n in range(total)
                )
            )
        )


def test_more_concurrent_writers_than_threads_on_one_worker(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    """More requests in flight than worker threads and pooled connections: none may
    wait for a connection (or SQLite's write lock) inside a thread while the holders need
    a thread to finish (which stalls them all until a timeout, then answers 500)."""
    server = start_server(fresh_database(engine), workers=1)
    token = setup_survey(server)

    answers = asyncio.run(crowd(server, token, 2 * CROWD))

    assert Counter(a.status_code for a in answers) == {201: 2 * CROWD}
    assert len(stored_ids(server, token)) == 2 * CROWD
