"""Operations (contract §8): probes, metrics, request ids, CORS, and problem+json for
requests that match no route."""

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.settings import Settings
from tests.conftest import PROBLEM_JSON, bearer

UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/nope"
FORM_ORIGIN = "https://forms.example.org"
OTHER_ORIGIN = "https://elsewhere.example.com"


@pytest.fixture
def cors_client(settings: Settings) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"cors_origins": [FORM_ORIGIN]})
    with TestClient(create_app(configured)) as client:
        yield client


def _preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/v1/surveys",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    return {k.lower(): v for k, v in response.headers.items()}


def test_healthz_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_when_the_database_answers(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    app = create_app(Settings(database_url=UNREACHABLE))
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200  # alive, just not ready
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}
    assert "nope" not in response.text  # no connection details leak


def test_metrics_count_requests(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/surveys").status_code == 401
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "# TYPE hearme_http_requests_total counter" in text
    assert re.search(
        r'^hearme_http_requests_total\{method="GET",route="/healthz",status="200"\} [1-9]',
        text,
        re.MULTILINE,
    )
    # Labelled by route template and status, never by a concrete path or a key.
    assert re.search(
        r'^hearme_http_requests_total\{method="GET",route="/v1/surveys",status="401"\} [1-9]',
        text,
        re.MULTILINE,
    )
    assert "hearme_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/v1/surveys"),  # 401
        ("GET", "/no-such-path"),  # 404
        ("DELETE", "/healthz"),  # 405
    ],
)
def test_every_response_carries_a_request_id(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path)
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", response.headers["x-request-id"])


def test_request_ids_are_new_for_each_request(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_a_valid_request_id_is_echoed(client: TestClient, admin: dict[str, str]) -> None:
    supplied = "lb-7f3a.2024_01-xyz"
    response = client.get("/v1/surveys", headers={**admin, "X-Request-ID": supplied})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == supplied


@pytest.mark.parametrize("supplied", ["has spaces", "x" * 129, "semi;colon", "ünïcode"])
def test_an_invalid_request_id_is_replaced(client: TestClient, supplied: str) -> None:
    response = client.get("/healthz", headers={b"X-Request-ID": supplied.encode()})
    assert response.status_code == 200
    echoed = response.headers["x-request-id"]
    assert echoed != supplied
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", echoed)


def test_cors_preflight_from_a_configured_origin(cors_client: TestClient) -> None:
    headers = _preflight(cors_client, FORM_ORIGIN)
    assert headers["access-control-allow-origin"] == FORM_ORIGIN
    assert "POST" in headers["access-control-allow-methods"]
    assert "authorization" in headers["access-control-allow-headers"].lower()


def test_cors_preflight_from_another_origin(cors_client: TestClient) -> None:
    headers = _preflight(cors_client, OTHER_ORIGIN)
    assert "access-control-allow-origin" not in headers


def test_cors_simple_request_exposes_the_request_id(
    cors_client: TestClient, admin: dict[str, str]
) -> None:
    response = cors_client.get("/v1/surveys", headers={**admin, "Origin": FORM_ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FORM_ORIGIN
    assert "x-request-id" in response.headers["access-control-expose-headers"].lower()
    other = cors_client.get("/v1/surveys", headers={**admin, "Origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_by_default(client: TestClient) -> None:
    headers = _preflight(client, FORM_ORIGIN)
    assert not any(name.startswith("access-control-") for name in headers)
    response = client.get("/healthz", headers={"Origin": FORM_ORIGIN})
    assert not any(name.lower().startswith("access-control-") for name in response.headers)


def test_unknown_path_is_a_problem(client: TestClient) -> None:
    response = client.get("/v1/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == 404
    assert body["title"]
    assert "Traceback" not in response.text


def test_wrong_method_is_a_problem(client: TestClient, admin: dict[str, str]) -> None:
    response = client.patch("/v1/surveys", headers=admin, json={})
    assert response.status_code == 405
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.json()["status"] == 405
    assert "allow" in {k.lower() for k in response.headers}


def test_missing_key_is_a_problem_with_a_challenge(client: TestClient) -> None:
    response = client.get("/v1/surveys")
    assert response.status_code == 401
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert response.headers["www-authenticate"] == "Bearer"
    unknown = client.get("/v1/surveys", headers=bearer("hm_not-a-key"))
    assert unknown.status_code == 401
    assert unknown.json()["status"] == 401
