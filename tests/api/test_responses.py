"""Responses (contract §5): idempotent submission, listing and paging, reading, erasing."""

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import MakeKey, assert_problem, bearer, submission, survey_definition

RESPONSES = "/v1/surveys/trust/responses"
PUBLIC_FIELDS = {"id", "survey", "site", "wave", "received_at", "submitted_at", "answers"}


def count(db_url: str, sql: str, **params: Any) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()
    return int(value)


def stored_responses(db_url: str) -> int:
    return count(db_url, "SELECT count(*) FROM response")


@pytest.fixture
def open_survey(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    """The test survey with both waves open, so that live posts reach either."""
    waves = [
        {"id": "midway", "name": "Mid-stage survey", "opens_at": None, "closes_at": None},
        {"id": "final", "name": "Final survey", "opens_at": None, "closes_at": None},
    ]
    response = client.post("/v1/surveys", json=survey_definition(waves=waves), headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def post(
    client: TestClient,
    headers: dict[str, str],
    body: dict[str, Any],
    idempotency_key: str | None = None,
) -> httpx.Response:
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    response: httpx.Response = client.post(RESPONSES, json=body, headers={**headers, **extra})
    return response


def create(client: TestClient, headers: dict[str, str], **envelope: Any) -> dict[str, Any]:
    response = post(client, headers, {**submission(), **envelope})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def walk(
    client: TestClient, headers: dict[str, str], query: str = "", limit: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """Every page of a listing, following next_cursor to the end."""
    params: dict[str, Any] = dict(httpx.QueryParams(query))
    if limit is not None:
        params["limit"] = limit
    cursor: str | None = None
    for _ in range(10_000):
        page_params = httpx.QueryParams(query).merge(params)
        if cursor is not None:
            page_params = page_params.set("cursor", cursor)
        response = client.get(RESPONSES, params=page_params, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) >= {"items", "next_cursor"}
        yield body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return
    raise AssertionError("the cursor never ran out")


def all_ids(client: TestClient, headers: dict[str, str], query: str = "") -> list[str]:
    return [item["id"] for page in walk(client, headers, query) for item in page]


# --- idempotency -------------------------------------------------------------------


def test_a_replay_returns_the_first_response_and_stores_nothing(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    body = submission(trust_actions="Listen.", agencies=["school", "police"])
    first = post(client, admin, body, "form-123")
    assert first.status_code == 201, first.text
    answers_before = count(db_url, "SELECT count(*) FROM answer")

    again = post(client, admin, body, "form-123")
    assert again.status_code == 200, again.text
    assert again.json() == first.json()

    # the same body with its keys in another order is the same request
    reordered = {
        "answers": dict(reversed(body["answers"].items())),
        "wave": "midway",
        "site": "site-1",
    }
    third = post(client, admin, reordered, "form-123")
    assert third.status_code == 200, third.text
    assert third.json() == first.json()

    assert stored_responses(db_url) == 1
    assert count(db_url, "SELECT count(*) FROM answer") == answers_before
    assert all_ids(client, admin) == [first.json()["id"]]


def test_the_same_key_with_another_body_is_409(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    first = post(client, admin, submission(trust_confidence=4), "k-1")
    assert first.status_code == 201, first.text
    other = post(client, admin, submission(trust_confidence=5), "k-1")
    assert_problem(other, 409)
    assert stored_responses(db_url) == 1
    # the first body still replays
    assert post(client, admin, submission(trust_confidence=4), "k-1").status_code == 200


def test_the_same_key_from_another_api_key_is_a_new_response(
    client: TestClient, make_key: MakeKey, survey: dict[str, Any], db_url: str
) -> None:
    form_a = bearer(make_key("submitter", name="form-a"))
    form_b = bearer(make_key("submitter", name="form-b"))
    first = post(client, form_a, submission(), "shared-key")
    second = post(client, form_b, submission(), "shared-key")
    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert first.json()["id"] != second.json()["id"]
    assert stored_responses(db_url) == 2
    # and each key replays its own
    assert post(client, form_b, submission(), "shared-key").json() == second.json()
    assert post(client, form_a, submission(), "shared-key").json() == first.json()


def test_a_key_whose_response_was_erased_is_409(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    first = post(client, admin, submission(), "erase-me")
    assert first.status_code == 201, first.text
    erased = client.delete(f"{RESPONSES}/{first.json()['id']}", headers=admin)
    assert erased.status_code == 204
    assert_problem(post(client, admin, submission(), "erase-me"), 409)
    assert_problem(post(client, admin, submission(trust_confidence=1), "erase-me"), 409)
    assert stored_responses(db_url) == 0


def test_a_refused_submission_does_not_use_up_its_key(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    assert_problem(post(client, admin, submission(trust_confidence=9), "retry"), 422)
    assert stored_responses(db_url) == 0
    fixed = post(client, admin, submission(trust_confidence=3), "retry")
    assert fixed.status_code == 201, fixed.text
    assert stored_responses(db_url) == 1


def test_without_a_key_every_post_is_a_new_response(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    ids = {post(client, admin, submission()).json()["id"] for _ in range(3)}
    assert len(ids) == 3
    assert stored_responses(db_url) == 3


@pytest.mark.parametrize(("key", "status"), [("a" * 200, 201), ("a" * 201, 422)])
def test_idempotency_key_length(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], key: str, status: int
) -> None:
    response = post(client, admin, submission(), key)
    assert response.status_code == status, response.text


# --- listing -----------------------------------------------------------------------


def test_listing_filters_by_site_and_wave_in_arrival_order(
    client: TestClient, admin: dict[str, str], open_survey: dict[str, Any]
) -> None:
    plan = [
        ("site-1", "midway"),
        ("site-2", "final"),
        ("site-2", "midway"),
        ("site-1", "final"),
        ("site-1", "midway"),
        ("site-2", "final"),
    ]
    created = [create(client, admin, site=site, wave=wave) for site, wave in plan]

    def expected(sites: set[str], waves: set[str]) -> list[dict[str, Any]]:
        return [r for r in created if r["site"] in sites and r["wave"] in waves]

    both_sites, both_waves = {"site-1", "site-2"}, {"midway", "final"}
    cases = [
        ("", both_sites, both_waves),
        ("site=site-1", {"site-1"}, both_waves),
        ("site=site-2", {"site-2"}, both_waves),
        ("wave=final", both_sites, {"final"}),
        ("site=site-2&wave=final", {"site-2"}, {"final"}),
        ("site=site-1&wave=final", {"site-1"}, {"final"}),
        ("site=site-1&site=site-2&wave=midway", both_sites, {"midway"}),
        ("wave=midway&wave=final", both_sites, both_waves),
    ]
    for query, sites, waves in cases:
        response = client.get(f"{RESPONSES}?{query}", headers=admin)
        assert response.status_code == 200, (query, response.text)
        body = response.json()
        assert body["items"] == expected(sites, waves), query
        assert body["next_cursor"] is None
        for item in body["items"]:
            assert set(item) >= PUBLIC_FIELDS


def test_pages_walk_every_item_once_in_arrival_order(
    client: TestClient, admin: dict[str, str], open_survey: dict[str, Any]
) -> None:
    created = [
        create(client, admin, site=f"site-{1 + i % 2}", wave=("midway", "final")[i // 4 % 2])
        for i in range(11)
    ]
    ids = [r["id"] for r in created]
    for limit, sizes in [
        (1, [1] * 11),
        (3, [3, 3, 3, 2]),
        (4, [4, 4, 3]),
        (11, [11]),
        (1000, [11]),
    ]:
        pages = list(walk(client, admin, limit=limit))
        assert [len(p) for p in pages] == sizes, limit
        assert [item["id"] for page in pages for item in page] == ids, limit

    for query in ("site=site-2", "wave=final", "site=site-1&wave=midway"):
        params = dict(httpx.QueryParams(query))
        want = [
            r["id"]
            for r in created
            if r["site"] == params.get("site", r["site"])
            and r["wave"] == params.get("wave", r["wave"])
        ]
        got = [item["id"] for page in walk(client, admin, query, limit=2) for item in page]
        assert got == want, query


def test_a_page_stays_stable_when_new_responses_arrive(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    first = [create(client, admin)["id"] for _ in range(3)]
    page = client.get(f"{RESPONSES}?limit=2", headers=admin).json()
    later = create(client, admin)["id"]
    rest = client.get(f"{RESPONSES}?limit=2&cursor={page['next_cursor']}", headers=admin).json()
    assert [i["id"] for i in page["items"]] + [i["id"] for i in rest["items"]] == [
        *first[:2],
        first[2],
        later,
    ]
    assert rest["next_cursor"] is None


def test_the_default_page_is_100(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    ids = [create(client, admin)["id"] for _ in range(101)]
    first = client.get(RESPONSES, headers=admin).json()
    assert [i["id"] for i in first["items"]] == ids[:100]
    assert first["next_cursor"] is not None
    rest = client.get(f"{RESPONSES}?cursor={first['next_cursor']}", headers=admin).json()
    assert [i["id"] for i in rest["items"]] == ids[100:]
    assert rest["next_cursor"] is None


def test_an_empty_listing(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = client.get(RESPONSES, headers=admin)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        "x",
        _b64("not json"),
        _b64('"abc"'),
        _b64("1.5"),
        _b64("[1]"),
        _b64("{}"),
        _b64("null"),
        _b64("true"),
        _b64("1e999"),
        _b64("1" + "0" * 40),
        _b64("-1" + "0" * 40),
        "A" * 501,
    ],
)
def test_a_malformed_cursor_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], cursor: str
) -> None:
    create(client, admin)
    response = client.get(RESPONSES, params={"cursor": cursor}, headers=admin)
    body = assert_problem(response, 422)
    assert any("cursor" in error["loc"] for error in body["errors"]), body


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5", ""])
def test_a_limit_outside_1_to_1000_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], limit: str
) -> None:
    response = client.get(f"{RESPONSES}?limit={limit}", headers=admin)
    body = assert_problem(response, 422)
    assert any("limit" in error["loc"] for error in body["errors"]), body


@pytest.mark.parametrize(
    ("params", "field", "named"),
    [
        ({"site": "false"}, "site", "false"),
        ({"site": ["site-1", "site-9"]}, "site", "site-9"),
        ({"wave": "wave-9"}, "wave", "wave-9"),
    ],
)
def test_listing_by_an_unknown_site_or_wave_is_422(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    params: dict[str, Any],
    field: str,
    named: str,
) -> None:
    """A filter naming nothing in the survey is a mistake to report, not an empty page that
    reads as "nobody at that site responded" (the statistics and exports say the same)."""
    create(client, admin)
    body = assert_problem(client.get(RESPONSES, params=params, headers=admin), 422)
    assert [(e["loc"], named in e["msg"]) for e in body["errors"]] == [(["query", field], True)]


def test_listing_an_unknown_survey_is_404(client: TestClient, admin: dict[str, str]) -> None:
    assert_problem(client.get("/v1/surveys/nope/responses", headers=admin), 404)


# --- reading one -------------------------------------------------------------------


def test_reading_one_response(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> None:
    created = create(
        client,
        admin,
        answers={"role": "health", "trust_confidence": 2, "trust_actions": "  Be patient.  "},
        submitted_at="2020-01-02T03:04:05Z",
    )
    assert set(created) >= PUBLIC_FIELDS
    assert created["survey"] == "trust"
    assert created["answers"] == {
        "role": "health",
        "trust_confidence": 2,
        "trust_actions": "Be patient.",
    }
    for headers in (admin, bearer(make_key("evaluator"))):
        got = client.get(f"{RESPONSES}/{created['id']}", headers=headers)
        assert got.status_code == 200, got.text
        assert got.json() == created


def test_reading_an_unknown_response_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    create(client, admin)
    for response_id in (str(uuid.uuid4()), "nope"):
        assert_problem(client.get(f"{RESPONSES}/{response_id}", headers=admin), 404)


def test_a_response_of_another_survey_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    other = client.post("/v1/surveys", json=survey_definition(id="other"), headers=admin)
    assert other.status_code == 201, other.text
    foreign = client.post("/v1/surveys/other/responses", json=submission(), headers=admin)
    assert foreign.status_code == 201, foreign.text
    foreign_id = foreign.json()["id"]
    assert foreign.json()["survey"] == "other"

    assert_problem(client.get(f"{RESPONSES}/{foreign_id}", headers=admin), 404)
    assert_problem(client.delete(f"{RESPONSES}/{foreign_id}", headers=admin), 404)
    assert all_ids(client, admin) == []
    # still there, under its own survey
    assert client.get(f"/v1/surveys/other/responses/{foreign_id}", headers=admin).status_code == 200
    assert stored_responses(db_url) == 1


# --- erasing -----------------------------------------------------------------------


def test_erasing_a_response(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    full = submission(
        agencies=["police", "ngo"],
        years=3.5,
        cases=2,
        involved=True,
        trust_actions="Listen to them.",
    )
    doomed = post(client, admin, full)
    kept = post(client, admin, full)
    assert doomed.status_code == kept.status_code == 201
    doomed_id, kept_id = doomed.json()["id"], kept.json()["id"]

    def answer_rows(response_id: str) -> int:
        return count(
            db_url,
            "SELECT count(*) FROM answer JOIN response ON answer.response_pk = response.pk"
            " WHERE response.id = :id",
            id=response_id,
        )

    per_response = answer_rows(doomed_id)
    assert per_response >= 7  # role, likert, two agencies, years, cases, involved, text
    assert count(db_url, "SELECT count(*) FROM answer") == 2 * per_response

    erased = client.delete(f"{RESPONSES}/{doomed_id}", headers=admin)
    assert erased.status_code == 204, erased.text
    assert erased.content == b""

    assert_problem(client.get(f"{RESPONSES}/{doomed_id}", headers=admin), 404)
    assert all_ids(client, admin) == [kept_id]
    assert count(db_url, "SELECT count(*) FROM response WHERE id = :id", id=doomed_id) == 0
    assert count(db_url, "SELECT count(*) FROM answer") == per_response
    assert answer_rows(kept_id) == per_response
    assert_problem(client.delete(f"{RESPONSES}/{doomed_id}", headers=admin), 404)
    assert client.get(f"{RESPONSES}/{kept_id}", headers=admin).json() == kept.json()


def test_erasing_an_unknown_response_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    assert_problem(client.delete(f"{RESPONSES}/{uuid.uuid4()}", headers=admin), 404)
