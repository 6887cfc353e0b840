"""Each worker's submissions writer process (`service.writer`) under faults, on a real
`hearme serve`: a killed writer fails only its batches in flight (503, to retry) and is
replaced at the next batch; a killed worker leaves no writer behind."""

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.conftest import submission, survey_definition
from tests.server.conftest import StartServer

THREADS = 4
SUBMISSIONS = 240


def _writers() -> dict[int, int]:
    """The writer processes on this machine: pid -> parent pid."""
    found: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if b"api.writer" in command and fields[0] != "Z":
            found[int(entry.name)] = int(fields[1])
    return found


def _writers_of(pid: int) -> list[int]:
    return [child for child, parent in _writers().items() if parent == pid]


def _until(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_killed_writer_fails_its_batches_alone_and_is_replaced(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    url = fresh_database(engine)
    server = start_server(url)
    token = server.create_key(name="admin", role="admin")
    with server.client(token) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        (writer,) = _writers_of(server.process.pid)  # one worker: uvicorn serves in-process

    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with server.client(token, limits=limits) as client, ThreadPoolExecutor(THREADS) as pool:

        def send(n: int) -> httpx.Response:
            body = submission(trust_actions=f"Answer {n}.", cases=n)
            headers = {"Idempotency-Key": f"key-{n}"}
            return client.post("/v1/surveys/trust/responses", json=body, headers=headers)

        def post(n: int) -> httpx.Response:
            if n == SUBMISSIONS // 4:
                os.kill(writer, signal.SIGKILL)  # mid-stream, batches in flight
            return send(n)

        answers = list(pool.map(post, range(SUBMISSIONS)))
        statuses = {a.status_code for a in answers}
        assert statuses <= {201, 503}, [a.text for a in answers if a.status_code not in (201, 503)]
        for answer in answers:
            if answer.status_code == 503:
                assert answer.headers["Retry-After"]
                assert answer.headers["content-type"] == "application/problem+json"

        # Every submission retried with its key until it is acknowledged: exactly one each.
        for n, answer in enumerate(answers):
            while answer.status_code == 503:
                time.sleep(0.1)
                answer = send(n)
            assert answer.status_code in (200, 201), answer.text
        listed = client.get("/v1/surveys/trust/responses", params={"limit": 1000})
        assert listed.status_code == 200
        assert len(listed.json()["items"]) == SUBMISSIONS

    replaced = _writers_of(server.process.pid)
    assert len(replaced) == 1
    assert replaced != [writer]
    assert "the submissions writer stopped" in server.output()


def test_a_killed_worker_leaves_no_writer_behind(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    server = start_server(fresh_database(engine))
    token = server.create_key(name="admin", role="admin")
    with server.client(token) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        created = client.post("/v1/surveys/trust/responses", json=submission())
        assert created.status_code == 201
    (writer,) = _writers_of(server.process.pid)
    os.kill(server.process.pid, signal.SIGKILL)  # the worker alone, not its group
    server.process.wait(timeout=10)
    assert _until(lambda: writer not in _writers()), f"writer {writer} outlived its worker"
