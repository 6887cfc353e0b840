"""Codebooks (contract §6): stored per survey and text question, replaced whole, with history."""

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.seed.dataset import load_codebook
from tests.conftest import MakeKey, bearer

URL = "/v1/surveys/trust/codebooks/trust_actions"


def codebook() -> dict[str, Any]:
    return {
        "question": "trust_actions",
        "themes": [
            {
                "id": "relationship",
                "label": "Relationship-based practice",
                "domain": "being",
                "categories": [
                    {
                        "id": "rapport",
                        "label": "Building a good rapport",
                        "description": "Engaging the child.",
                        "origin": "deductive",
                        "keywords": ["rapport"],
                    },
                    {"id": "time", "label": "Spending time", "origin": "inductive"},
                ],
            },
            {
                "id": "child_centred",
                "label": "Child-centred practice",
                "domain": None,
                "categories": [{"id": "listening", "label": "Listening", "keywords": ["listen"]}],
            },
        ],
    }


def test_put_then_get_returns_the_codebook_in_order(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    put = client.put(URL, json=codebook(), headers=admin)
    assert put.status_code == 200, put.text
    got = client.get(URL, headers=admin)
    assert got.status_code == 200
    body = got.json()
    assert body["version"] == 1
    assert body["updated_by"] == "admin"
    assert [t["id"] for t in body["themes"]] == ["relationship", "child_centred"]
    assert [c["id"] for c in body["themes"][0]["categories"]] == ["rapport", "time"]
    assert body["themes"][0]["categories"][1] == {
        "id": "time",
        "label": "Spending time",
        "description": None,
        "origin": "inductive",
        "keywords": [],
    }
    assert body["themes"][1]["domain"] is None


def test_replacing_keeps_every_version_in_the_history(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], make_key: MakeKey
) -> None:
    assert client.put(URL, json=codebook(), headers=admin).status_code == 200
    changed = codebook()
    changed["themes"][0]["label"] = "Relationships"
    evaluator = bearer(make_key("evaluator", name="eva"))
    second = client.put(URL, json=changed, headers=evaluator)
    assert second.status_code == 200
    assert second.json()["version"] == 2
    history = client.get(f"{URL}/history", headers=admin).json()
    assert [(h["version"], h["changed_by"]) for h in history] == [(1, "admin"), (2, "eva")]
    assert history[0]["themes"][0]["label"] == "Relationship-based practice"
    assert history[1]["themes"][0]["label"] == "Relationships"
    assert client.get(URL, headers=admin).json()["themes"][0]["label"] == "Relationships"


@pytest.mark.parametrize(
    ("change", "loc_end"),
    [
        (lambda c: c["themes"][1]["categories"].append({"id": "rapport", "label": "x"}), None),
        (lambda c: c["themes"].append(copy.deepcopy(c["themes"][0])), None),
        (lambda c: c["themes"][0].update(domain="feeling"), "domain"),
        (lambda c: c["themes"][0]["categories"][0].update(origin="abductive"), "origin"),
        (lambda c: c["themes"][0]["categories"][0].update(id="Not A Slug"), "id"),
        (lambda c: c["themes"][0]["categories"][0].update(label=""), "label"),
        (lambda c: c["themes"][0].update(colour="red"), "colour"),
    ],
)
def test_malformed_codebooks_are_422_naming_the_field(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    change: Any,
    loc_end: str | None,
) -> None:
    body = codebook()
    change(body)
    response = client.put(URL, json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert errors
    if loc_end is not None:
        assert any(e["loc"][-1] == loc_end for e in errors), errors
    assert client.get(URL, headers=admin).status_code == 404


def test_only_text_questions_have_codebooks(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    likert = client.put(
        "/v1/surveys/trust/codebooks/trust_confidence", json=codebook(), headers=admin
    )
    assert likert.status_code == 422
    assert likert.json()["errors"][0]["loc"] == ["question"]
    unknown = client.put("/v1/surveys/trust/codebooks/nothing", json=codebook(), headers=admin)
    assert unknown.status_code == 404
    other = {**codebook(), "question": "years"}
    assert client.put(URL, json=other, headers=admin).status_code == 422


@pytest.mark.parametrize(
    ("role", "put_status", "get_status"),
    [
        ("evaluator", 200, 200),
        ("coder", 403, 200),
        ("submitter", 403, 403),
        ("reader", 403, 403),
    ],
)
def test_roles(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    make_key: MakeKey,
    role: str,
    put_status: int,
    get_status: int,
) -> None:
    client.put(URL, json=codebook(), headers=admin)
    headers = bearer(make_key(role))
    assert client.put(URL, json=codebook(), headers=headers).status_code == put_status
    assert client.get(URL, headers=headers).status_code == get_status


def test_the_seed_codebook_is_accepted_whole(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    seed = load_codebook()
    response = client.put(URL, json=seed, headers=admin)
    assert response.status_code == 200, response.text
    themes = response.json()["themes"]
    assert [len(t["categories"]) for t in themes] == [8, 7, 11, 2]
    assert themes == seed["themes"]
