"""A 201 is durable: every acknowledged submission survives a SIGKILL of the server.

Also the operations endpoints of a real server (contract §8).
"""

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.conftest import submission, survey_definition
from tests.server.conftest import StartServer

ACKNOWLEDGED = 200
THREADS = 4


def test_acknowledged_submissions_survive_sigkill(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    url = fresh_database(engine)
    server = start_server(url, workers=2)
    token = server.create_key(name="admin", role="admin")
    with server.client(token) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201

    limits = httpx.Limits(max_connections=THREADS, max_keepalive_connections=THREADS)
    with server.client(token, limits=limits) as client, ThreadPoolExecutor(THREADS) as pool:

        def post(n: int) -> httpx.Response:
            body = submission(trust_actions=f"Durable answer {n}.", cases=n)
            return client.post("/v1/surveys/trust/responses", json=body)

        answers = list(pool.map(post, range(ACKNOWLEDGED)))
    acknowledged = {a.json()["id"]: a.json() for a in answers if a.status_code == 201}
    assert len(acknowledged) == ACKNOWLEDGED, [a.text for a in answers if a.status_code != 201]

    server.kill()
    assert server.process.returncode == -9

    restarted = start_server(url, workers=1)
    with restarted.client(token) as client:
        for response_id, created in acknowledged.items():
            got = client.get(f"/v1/surveys/trust/responses/{response_id}")
            assert got.status_code == 200, (response_id, got.text)
            assert got.json() == created
        listed = client.get("/v1/surveys/trust/responses", params={"limit": 1000})
        assert listed.status_code == 200
        assert {item["id"] for item in listed.json()["items"]} == set(acknowledged)


def test_operations_endpoints(
    fresh_database: Callable[[str], str], start_server: StartServer, engine: str
) -> None:
    server = start_server(fresh_database(engine), workers=2)
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json() == {"status": "ok"}
        assert client.get("/v1/surveys").status_code == 401
        metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    lines = metrics.text.splitlines()
    assert "# TYPE hearme_http_requests_total counter" in lines
    assert any(
        line.startswith("hearme_http_requests_total{")
        and 'route="/readyz"' in line
        and 'status="200"' in line
        for line in lines
    ), metrics.text

    # Two workers share their metrics through a directory the server makes, and removes
    # when it stops.
    assert list(server.tmp_dir.glob("hearme-metrics-*"))
    server.stop()
    assert server.process.returncode == 0, server.output()[-2000:]
    assert not list(server.tmp_dir.glob("hearme-metrics-*"))
