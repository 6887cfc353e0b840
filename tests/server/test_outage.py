"""A PostgreSQL outage, played by cutting a TCP proxy between a real `hearme serve` and
the machine's PostgreSQL (contract §11): every /v1 call is a 503 problem+json with
Retry-After within 5 s, /readyz is 503, and the server serves again on its own once the
proxy forwards again, with everything acknowledged before still there."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import submission, survey_definition
from tests.fixtures.tcp_proxy import TcpProxy
from tests.server.conftest import StartServer

DEADLINE = 5.0


@pytest.fixture
def proxied(fresh_database: Callable[[str], str]) -> Iterator[tuple[str, TcpProxy]]:
    """A fresh PostgreSQL database and the URL that reaches it through a TCP proxy."""
    direct = make_url(fresh_database("postgresql"))
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield url, proxy
    proxy.close()


def calls(response_id: str) -> list[tuple[str, str, Any]]:
    return [
        ("GET", "/v1/surveys", None),
        ("GET", "/v1/surveys/trust", None),
        ("POST", "/v1/surveys/trust/responses", submission()),
        ("GET", "/v1/surveys/trust/responses", None),
        ("GET", f"/v1/surveys/trust/responses/{response_id}", None),
        ("GET", "/v1/surveys/trust/stats/composition/role", None),
        ("GET", "/v1/keys", None),
        ("POST", "/v1/keys", {"name": "during-outage", "role": "reader"}),
    ]


@pytest.mark.parametrize("mode", ["refuse", "hang"])
def test_an_outage_is_a_fast_503_and_the_server_recovers_on_its_own(
    proxied: tuple[str, TcpProxy], start_server: StartServer, mode: str
) -> None:
    url, proxy = proxied
    server = start_server(url, env={"HEARME_DB_CONNECT_TIMEOUT": "2"})
    token = server.create_key(name="admin", role="admin")
    with server.client(token) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        acknowledged = [client.post("/v1/surveys/trust/responses", json=submission()).json()["id"]]

        proxy.cut(mode)  # type: ignore[arg-type]
        for method, path, body in calls(acknowledged[0]):
            started = time.monotonic()
            response = client.request(method, path, json=body)
            elapsed = time.monotonic() - started
            where = f"{method} {path}"
            assert response.status_code == 503, (where, response.text)
            assert elapsed < DEADLINE, (where, elapsed)
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["status"] == 503
            assert int(response.headers["retry-after"]) > 0, where
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "retry-after" in ready.headers
        assert client.get("/healthz").status_code == 200

        proxy.restore()
        deadline = time.monotonic() + 15
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "not ready again 15 s after the database came back"
            time.sleep(0.2)
        # Pooled connections broken by the outage are replaced, not handed out.
        for _ in range(12):
            again = client.post("/v1/surveys/trust/responses", json=submission())
            assert again.status_code == 201, again.text
            acknowledged.append(again.json()["id"])
        stored = client.get("/v1/surveys/trust/responses", params={"limit": 1000})
        assert stored.status_code == 200
        assert [r["id"] for r in stored.json()["items"]] == acknowledged
        assert "during-outage" not in {k["name"] for k in client.get("/v1/keys").json()}
    assert "Traceback" not in server.output()


def test_a_lasting_outage_keeps_answering_503_fast(
    start_server: StartServer, proxied: tuple[str, TcpProxy]
) -> None:
    """The server started while the database answered, then lost it for good: it keeps
    answering 503 fast, call after call (no pile-up of stuck requests)."""
    url, proxy = proxied
    server = start_server(url, env={"HEARME_DB_CONNECT_TIMEOUT": "2"})
    token = server.create_key(name="admin", role="admin")
    proxy.cut("hang")
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        started = time.monotonic()
        for _ in range(5):
            response = client.get("/v1/surveys", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 503
        assert time.monotonic() - started < 5 * DEADLINE
        assert client.get("/readyz").status_code == 503
