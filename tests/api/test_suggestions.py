"""GET .../responses/{id}/codings/{question}/suggestions (issue 4, part 5)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import MakeKey, assert_problem, bearer, submission

CODEBOOK = "/v1/surveys/trust/codebooks/trust_actions"
ANSWER = "They need to be LISTENED to, in a long term relationship. Listening matters."


def codebook() -> dict[str, Any]:
    return {
        "themes": [
            {
                "id": "relationship",
                "label": "Relationship-based practice",
                "categories": [
                    {"id": "rapport", "label": "Rapport", "keywords": ["rapport", "bond"]},
                    {"id": "over_time", "label": "Over time", "keywords": ["long-term"]},
                ],
            },
            {
                "id": "child_centred",
                "label": "Child-centred practice",
                "categories": [
                    {"id": "listening", "label": "Listening", "keywords": ["hear", "listen"]}
                ],
            },
        ]
    }


def respond(client: TestClient, admin: dict[str, str], site: str = "site-1", **answers: Any) -> str:
    body = {**submission(**answers), "site": site}
    created = client.post("/v1/surveys/trust/responses", json=body, headers=admin)
    assert created.status_code == 201, created.text
    response_id: str = created.json()["id"]
    return response_id


def url(response_id: str, question: str = "trust_actions") -> str:
    return f"/v1/surveys/trust/responses/{response_id}/codings/{question}/suggestions"


@pytest.fixture
def coded(client: TestClient, admin: dict[str, str], survey: dict[str, Any]) -> None:
    assert client.put(CODEBOOK, json=codebook(), headers=admin).status_code == 200


def test_suggests_the_matching_categories_with_their_spans(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, coded: None
) -> None:
    response_id = respond(client, admin, trust_actions=ANSWER)
    got = client.get(url(response_id), headers=bearer(make_key("coder")))
    assert got.status_code == 200, got.text
    assert got.json() == [
        {
            "category": "over_time",
            "theme": "relationship",
            "label": "Over time",
            "keywords": ["long-term"],
            "spans": [{"start": 34, "end": 43, "text": "long term"}],
        },
        {
            "category": "listening",
            "theme": "child_centred",
            "label": "Listening",
            "keywords": ["listen"],
            "spans": [
                {"start": 16, "end": 24, "text": "LISTENED"},
                {"start": 58, "end": 67, "text": "Listening"},
            ],
        },
    ]
    for suggestion in got.json():
        for span in suggestion["spans"]:
            assert ANSWER[span["start"] : span["end"]] == span["text"]


def test_a_blank_answer_has_no_suggestions(
    client: TestClient, admin: dict[str, str], coded: None
) -> None:
    response_id = respond(client, admin)
    got = client.get(url(response_id), headers=admin)
    assert got.status_code == 200, got.text
    assert got.json() == []


def test_suggestions_are_never_stored_as_codings(
    client: TestClient, admin: dict[str, str], coded: None, db_url: str
) -> None:
    response_id = respond(client, admin, trust_actions=ANSWER)
    assert client.get(url(response_id), headers=admin).json()
    codings = client.get(url(response_id).removesuffix("/suggestions"), headers=admin)
    assert codings.status_code == 200, codings.text
    assert codings.json()["status"] == "uncoded"
    assert codings.json()["codings"] == []
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            for table in ("coding", "coding_outcome", "effective_category"):
                assert conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar() == 0
    finally:
        engine.dispose()


def test_unknown_things_are_404(client: TestClient, admin: dict[str, str], coded: None) -> None:
    response_id = respond(client, admin, trust_actions=ANSWER)
    assert_problem(client.get(url("no-such-response"), headers=admin), 404)
    assert_problem(client.get(url(response_id, "nothing"), headers=admin), 404)
    # a question of the survey without a codebook
    assert_problem(client.get(url(response_id, "role"), headers=admin), 404)
    other = url(response_id).replace("/surveys/trust/", "/surveys/other/")
    assert_problem(client.get(other, headers=admin), 404)


def test_no_codebook_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response_id = respond(client, admin, trust_actions=ANSWER)
    assert_problem(client.get(url(response_id), headers=admin), 404)


@pytest.mark.parametrize(
    ("role", "status"),
    [("coder", 200), ("evaluator", 200), ("admin", 200), ("submitter", 403), ("reader", 403)],
)
def test_roles(
    client: TestClient,
    admin: dict[str, str],
    make_key: MakeKey,
    coded: None,
    role: str,
    status: int,
) -> None:
    response_id = respond(client, admin, trust_actions=ANSWER)
    got = client.get(url(response_id), headers=bearer(make_key(role)))
    assert got.status_code == status, got.text
    if status != 200:
        assert_problem(got, status)


@pytest.mark.parametrize("role", ["coder", "evaluator"])
def test_a_site_bound_key_gets_suggestions_only_for_its_sites(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, coded: None, role: str
) -> None:
    mine = respond(client, admin, site="site-2", trust_actions=ANSWER)
    theirs = respond(client, admin, site="site-1", trust_actions=ANSWER)
    key = bearer(make_key(role, sites=["site-2"]))
    assert client.get(url(mine), headers=key).status_code == 200
    assert_problem(client.get(url(theirs), headers=key), 403)
