"""Rate limits (contract §11): per key, and failed authentications per client address;
over either, 429 problem+json with Retry-After."""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.database import Database
from service.settings import Settings
from tests.conftest import (
    MakeKey,
    assert_problem,
    bearer,
    early_in_a_rate_window,
    submission,
    survey_definition,
)


@pytest.fixture
def limited(db_url: str, database: Database) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, rate_limit=5, auth_failure_limit=3)
    with TestClient(create_app(settings, database=database)) as client:
        early_in_a_rate_window()
        yield client


def retry_after(response: object) -> int:
    value = int(response.headers["retry-after"])  # type: ignore[attr-defined]
    assert 1 <= value <= 60
    return value


def test_a_key_over_its_limit_gets_429_and_others_do_not(
    limited: TestClient, make_key: MakeKey
) -> None:
    busy = bearer(make_key("evaluator", name="busy"))
    calm = bearer(make_key("evaluator", name="calm"))
    for _ in range(5):
        assert limited.get("/v1/surveys", headers=busy).status_code == 200
    refused = limited.get("/v1/surveys", headers=busy)
    body = assert_problem(refused, 429)
    assert "limit" in body["detail"]
    retry_after(refused)
    # Another route counts for the same key; another key has its own count.
    assert limited.post("/v1/surveys", json={}, headers=busy).status_code == 429
    assert limited.get("/v1/surveys", headers=calm).status_code == 200
    assert limited.get("/healthz").status_code == 200  # operations are not limited


def test_failed_authentications_from_one_address_get_429(
    limited: TestClient, make_key: MakeKey
) -> None:
    good = bearer(make_key("evaluator", name="good"))
    for headers in ({}, bearer("hm_" + "x" * 43), {"Authorization": "Basic eDp5"}):
        assert_problem(limited.get("/v1/surveys", headers=headers), 401)
    for headers in (bearer("hm_" + "y" * 43), good):
        refused = limited.get("/v1/surveys", headers=headers)
        body = assert_problem(refused, 429)
        assert "failed authentications" in body["detail"]
        retry_after(refused)


def test_successful_authentications_do_not_count_as_failures(
    limited: TestClient, make_key: MakeKey
) -> None:
    keys = [bearer(make_key("reader", name=f"r{i}")) for i in range(4)]
    for headers in keys:  # 4 keys x 4 calls: over 3 failures if successes counted
        for _ in range(4):
            assert limited.get("/v1/surveys", headers=headers).status_code == 403


def test_the_submit_route_is_limited_like_every_other(
    limited: TestClient, make_key: MakeKey
) -> None:
    """Submissions authenticate on a path of their own (the key cache, no transaction):
    the same limits hold there, per key and for failed authentications."""
    admin = bearer(make_key("admin", name="admin"))
    assert limited.post("/v1/surveys", json=survey_definition(), headers=admin).status_code == 201
    form = bearer(make_key("submitter", name="form"))
    url = "/v1/surveys/trust/responses"
    for _ in range(5):
        assert limited.post(url, json=submission(), headers=form).status_code == 201
    over = limited.post(url, json=submission(), headers=form)
    assert_problem(over, 429)
    retry_after(over)
    for _ in range(3):
        assert_problem(limited.post(url, json=submission(), headers=bearer("hm_" + "z" * 43)), 401)
    refused = limited.post(url, json=submission(), headers=bearer("hm_" + "w" * 43))
    assert "failed authentications" in assert_problem(refused, 429)["detail"]
