"""The feed's promise (contract §9) against real servers: a client that follows
`next_cursor` sees every event exactly once, in commit order, while two worker
processes commit live submissions and imports concurrently; and a long poll in one
process wakes when another process commits."""

import threading
import time
from typing import Any

import pytest

from tests.conftest import submission, survey_definition
from tests.server.conftest import StartServer

WRITERS = 6
PER_WRITER = 40
IMPORTS = 4
IMPORT_ROWS = 25


def _import_body() -> bytes:
    row = (
        b'{"site": "site-2", "wave": "midway", "submitted_at": "2015-08-02T10:00:00Z",'
        b' "answers": {"role": "health", "trust_confidence": 3}}\n'
    )
    return row * IMPORT_ROWS


def test_a_follower_sees_every_event_once_in_commit_order(
    engine: str, fresh_database: Any, start_server: StartServer
) -> None:
    server = start_server(fresh_database(engine), workers=2)
    admin = server.create_key(name="admin", role="admin")
    with server.client(admin) as client:
        created = client.post("/v1/surveys", json=survey_definition())
        assert created.status_code == 201, created.text

    written: list[list[str]] = [[] for _ in range(WRITERS)]
    seen: list[dict[str, Any]] = []
    writers_done = threading.Event()
    errors: list[str] = []

    def write(n: int) -> None:
        with server.client(admin) as client:
            for _ in range(PER_WRITER):
                response = client.post("/v1/surveys/trust/responses", json=submission())
                if response.status_code != 201:
                    errors.append(response.text)
                    return
                written[n].append(response.json()["id"])

    def import_rows() -> None:
        with server.client(admin) as client:
            for _ in range(IMPORTS):
                response = client.post(
                    "/v1/surveys/trust/responses:import",
                    content=_import_body(),
                    headers={"Content-Type": "application/x-ndjson"},
                )
                if response.status_code != 200:
                    errors.append(response.text)

    expected = WRITERS * PER_WRITER + IMPORTS * IMPORT_ROWS

    def follow() -> None:
        cursor = None
        deadline = time.monotonic() + 120
        with server.client(admin) as client:
            while time.monotonic() < deadline:
                params: dict[str, Any] = {"limit": 7, "type": "response.created", "wait": 1}
                if cursor is not None:
                    params["after"] = cursor
                page = client.get("/v1/events", params=params)
                if page.status_code != 200:
                    errors.append(page.text)
                    return
                body = page.json()
                assert body["next_cursor"]
                cursor = body["next_cursor"]
                seen.extend(body["items"])
                if writers_done.is_set() and len(seen) >= expected and not body["items"]:
                    return

    follower = threading.Thread(target=follow)
    follower.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    threads.append(threading.Thread(target=import_rows))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writers_done.set()
    follower.join()
    assert not errors, errors[:3]

    ids = [event["data"]["id"] for event in seen]
    event_ids = [event["id"] for event in seen]
    assert len(event_ids) == len(set(event_ids)), "an event was seen twice"
    assert len(ids) == expected
    live = {i for ids_of_writer in written for i in ids_of_writer}
    assert live <= set(ids), "a committed response's event was never seen"
    order = {response_id: place for place, response_id in enumerate(ids)}
    for ids_of_writer in written:
        # each writer's next submission began after its previous one had committed
        places = [order[i] for i in ids_of_writer]
        assert places == sorted(places), "the feed is not in commit order"


@pytest.mark.parametrize("engine", ["postgresql"])
def test_a_long_poll_wakes_when_another_process_commits(
    engine: str, fresh_database: Any, start_server: StartServer
) -> None:
    url = fresh_database(engine)
    poller = start_server(url)
    writer = start_server(url)
    admin = poller.create_key(name="admin", role="admin")
    with poller.client(admin) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        cursor = client.get("/v1/events").json()["next_cursor"]
    answered: dict[str, Any] = {}

    def poll() -> None:
        with poller.client(admin) as client:
            started = time.monotonic()
            page = client.get("/v1/events", params={"after": cursor, "wait": 20})
            answered["elapsed"] = time.monotonic() - started
            answered["body"] = page.json()

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(1.0)
    with writer.client(admin) as client:
        committed = time.monotonic()
        assert client.post("/v1/surveys/trust/responses", json=submission()).status_code == 201
        done = time.monotonic()
    thread.join()
    assert [e["type"] for e in answered["body"]["items"]] == ["response.created"]
    # woken by NOTIFY from the other server, well before its 2 s safety poll or the wait
    assert answered["elapsed"] < 1.0 + (done - committed) + 0.8, answered["elapsed"]
