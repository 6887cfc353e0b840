"""Webhook delivery by real `hearme serve` processes to a receiver on 127.0.0.1: two
workers never send one attempt twice, and deliveries pending when the server is
SIGKILLed are all delivered after it restarts; the delivery process beside the workers
is restarted after a crash and does not outlive its server."""

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook as Verifier

from tests.conftest import submission, survey_definition
from tests.fixtures.receiver import receiver
from tests.fixtures.waiting import until
from tests.server.conftest import Server, StartServer, launch

ENV = {
    "HEARME_WEBHOOK_ALLOW_PRIVATE": "true",
    "HEARME_SECRET_KEY": "server-test-secret-key-0123456789",
    "HEARME_WEBHOOK_TIMEOUT": "2",
    "HEARME_WEBHOOK_RETRY_SCHEDULE": ",".join(["1"] * 30),
}


def _prepare(server: Server, url: str) -> tuple[str, dict[str, Any]]:
    admin = server.create_key(name="admin", role="admin")
    with server.client(admin) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        made = client.post("/v1/webhooks", json={"url": url, "events": ["response.created"]})
        assert made.status_code == 201, made.text
    return admin, made.json()


def _submit(server: Server, admin: str, count: int, threads: int = 4) -> list[str]:
    ids: list[str] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        with server.client(admin) as client:
            for _ in range(n):
                response = client.post("/v1/surveys/trust/responses", json=submission())
                assert response.status_code == 201, response.text
                with lock:
                    ids.append(response.json()["id"])

    workers = [threading.Thread(target=run, args=(count // threads,)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(ids) == count
    return ids


def test_two_workers_never_send_one_attempt_twice(
    engine: str, fresh_database: Any, start_server: StartServer
) -> None:
    with receiver() as sink:
        server = start_server(fresh_database(engine), workers=2, env=ENV)
        admin, hook = _prepare(server, sink.url)
        ids = _submit(server, admin, 80)
        sink.wait_for(len(ids), timeout=60)
        time.sleep(3.0)  # time for any duplicate to arrive
        got = sink.received()
        assert len(got) == len(ids), "an attempt was sent twice"
        verifier = Verifier(hook["secret"])
        delivered = {verifier.verify(r.body, r.headers)["data"]["id"] for r in got}
        assert delivered == set(ids)
        with server.client(admin) as client:
            listed = client.get(
                f"/v1/webhooks/{hook['id']}/deliveries",
                params={"status": "delivered", "limit": 1000},
            ).json()["items"]
        assert len(listed) == len(ids)
        assert {d["attempts"] for d in listed} == {1}


def test_pending_deliveries_survive_a_sigkill(
    engine: str, fresh_database: Any, start_server: StartServer, tmp_path: Any
) -> None:
    accepting = threading.Event()
    with receiver() as sink:
        sink.answer = lambda n: (200, 0.0) if accepting.is_set() else (503, 0.0)
        url = fresh_database(engine)
        server = start_server(url, workers=2, env=ENV)
        admin, hook = _prepare(server, sink.url)
        ids = _submit(server, admin, 20)
        sink.wait_for(len(ids), timeout=60)  # every first attempt refused
        server.kill()
        accepting.set()
        seen_before = len(sink.received())
        restarted = launch(url, workers=2, directory=tmp_path, env=ENV)
        try:
            restarted.wait_ready()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                accepted = {
                    orjson.loads(r.body)["data"]["id"] for r in sink.received()[seen_before:]
                }
                if accepted >= set(ids):
                    break
                time.sleep(0.1)
            assert accepted == set(ids)
            # An attempt is recorded once its answer is back: the receiver may have
            # accepted the last one a moment before the delivery process wrote it down.
            with restarted.client(admin) as client:
                while True:
                    pending = client.get(
                        f"/v1/webhooks/{hook['id']}/deliveries", params={"status": "pending"}
                    ).json()["items"]
                    delivered = client.get(
                        f"/v1/webhooks/{hook['id']}/deliveries",
                        params={"status": "delivered", "limit": 100},
                    ).json()["items"]
                    if not pending or time.monotonic() > deadline:
                        break
                    time.sleep(0.1)
            assert pending == []
            assert len(delivered) == len(ids)
        finally:
            restarted.stop()


def _delivery_processes(server: Server) -> list[int]:
    """The pids of the server's webhook delivery processes (`hearme deliver`), from
    /proc: processes of its group whose command line names `deliver`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(fields[2]) == server.process.pid and b"deliver" in command:
            found.append(int(stat.parent.name))
    return found


def test_the_delivery_process_is_restarted_after_a_crash_and_ends_with_the_server(
    fresh_database: Any, start_server: StartServer
) -> None:
    with receiver() as sink:
        server = start_server(fresh_database("sqlite"), workers=1, env=ENV)
        admin, _ = _prepare(server, sink.url)
        first = until(lambda: _delivery_processes(server), timeout=60)
        assert len(first) == 1  # one delivery process beside the workers
        os.kill(first[0], signal.SIGKILL)
        second = until(
            lambda: [p for p in _delivery_processes(server) if p not in first], timeout=60
        )
        assert len(second) == 1
        ids = _submit(server, admin, 8)
        sink.wait_for(len(ids), timeout=60)  # the restarted process delivers
        delivered = {orjson.loads(r.body)["data"]["id"] for r in sink.received()}
        assert delivered == set(ids)
        # The server SIGKILLed alone (not its group): its delivery process does not go
        # on delivering as an orphan.
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)

        def gone() -> bool:
            try:
                os.kill(second[0], 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{second[0]}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"

        until(gone, timeout=30)
