"""A revoked key is refused by every worker within the key cache's bound (1 s), on a real
`hearme serve --workers 2`, on SQLite and PostgreSQL (`service.key_cache`)."""

import json
import time
from collections.abc import Callable

import httpx

from service.key_cache import TTL
from tests.conftest import submission, survey_definition
from tests.server.conftest import Server, StartServer

WORKERS = 2
PROBES = 40


def _logged(server: Server) -> dict[str, dict[str, object]]:
    """The access log lines of the server, by request id."""
    lines: dict[str, dict[str, object]] = {}
    for line in server.stderr_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("message") == "request" and "request_id" in entry:
                lines[str(entry["request_id"])] = entry
    return lines


def _probe(server: Server, token: str) -> tuple[int, str]:
    """One submission on a connection of its own (so the kernel may hand it to either
    worker); its status and request id."""
    with server.client(token) as client:
        response = client.post("/v1/surveys/trust/responses", json=submission())
    return response.status_code, response.headers["x-request-id"]


def _pids(server: Server, request_ids: list[str]) -> set[object]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logged = _logged(server)
        if all(r in logged for r in request_ids):
            return {logged[r]["pid"] for r in request_ids}
        time.sleep(0.05)
    raise AssertionError("requests missing from the access log")


def _probe_every_worker(server: Server, token: str) -> list[tuple[int, str]]:
    """At least PROBES probes, and more until every worker has answered one (at most 60 s):
    the statuses and request ids of them all."""
    probes: list[tuple[int, str]] = []
    deadline = time.monotonic() + 60
    while True:
        probes += [_probe(server, token) for _ in range(PROBES)]
        if len(_pids(server, [rid for _, rid in probes])) == WORKERS:
            return probes
        assert time.monotonic() < deadline, "one worker answered every probe for 60 s"


def test_a_revoked_key_is_refused_in_every_worker_within_the_bound(
    start_server: StartServer, fresh_database: Callable[[str], str], engine: str
) -> None:
    url = fresh_database(engine)
    # Each probe of the revoked key is a failed authentication from 127.0.0.1: raise that
    # limit (20 a minute, tests/api/test_rate_limits.py) out of the way of 40 probes.
    server = start_server(url, workers=WORKERS, env={"HEARME_AUTH_FAILURE_LIMIT": "100000"})
    admin = server.create_key(name="admin", role="admin")
    doomed = server.create_key(name="doomed", role="submitter")
    with server.client(admin) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201

    # Every worker serves (and so caches) the key before it is revoked. On a loaded machine
    # the second worker may still be starting when the first answers: probe until both did.
    accepted = _probe_every_worker(server, doomed)
    assert {status for status, _ in accepted} == {201}

    with server.client(admin) as client:
        revoked = client.delete("/v1/keys/doomed")
    assert revoked.status_code == 204, revoked.text
    committed = time.monotonic()

    # Within the bound a worker may still accept it; from the bound on, none does.
    while time.monotonic() - committed < TTL:
        status, _ = _probe(server, doomed)
        assert status in (201, 401)
    refused = _probe_every_worker(server, doomed)
    assert {status for status, _ in refused} == {401}
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get("/healthz").status_code == 200
