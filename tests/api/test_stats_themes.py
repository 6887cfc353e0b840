"""Theme statistics (contract §7.3): counts from the effective sets, with the §7 parameters."""

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import CODEBOOK_THEMES, MakeKey, assert_problem, bearer, submission

THEMES = "/v1/surveys/trust/stats/themes/trust_actions"

# (site, role, text, coder-a's set, coder-b's set, consensus)
PLAN: list[tuple[str, str, str | None, list[str] | None, list[str] | None, list[str] | None]] = [
    ("site-1", "police", "Listen.", ["listening"], ["listening"], None),  # agreed
    ("site-1", "police", "Take time, listen.", ["time", "listening"], None, None),  # single
    ("site-1", "health", "Rapport.", ["rapport"], ["rapport", "time"], None),  # disputed
    ("site-2", "health", "Be honest.", ["honest"], ["rapport"], ["honest", "rapport"]),  # resolved
    ("site-2", "other", "Spend time.", ["time", "rapport"], ["time", "rapport"], None),  # agreed
    ("site-2", "other", "Nothing to add.", [], [], None),  # agreed: codable, no category
    ("site-1", "other", "Not coded yet.", None, None, None),  # uncoded
    ("site-2", "police", None, None, None, None),  # blank
]


@pytest.fixture
def coded(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], make_key: MakeKey
) -> dict[str, str]:
    book = client.put(
        "/v1/surveys/trust/codebooks/trust_actions",
        json={"themes": CODEBOOK_THEMES},
        headers=admin,
    )
    assert book.status_code == 200, book.text
    coders = [bearer(make_key("coder", name=name)) for name in ("coder-a", "coder-b")]
    for site, role, text, a, b, agreed in PLAN:
        body = submission(role=role) | {"site": site}
        if text is not None:
            body["answers"]["trust_actions"] = text
        posted = client.post("/v1/surveys/trust/responses", json=body, headers=admin)
        assert posted.status_code == 201, posted.text
        path = f"/v1/surveys/trust/responses/{posted.json()['id']}/codings/trust_actions"
        for coder, chosen in zip(coders, (a, b), strict=True):
            if chosen is not None:
                put = client.put(path, json={"categories": chosen}, headers=coder)
                assert put.status_code == 200, put.text
        if agreed is not None:
            put = client.put(path + "/consensus", json={"categories": agreed}, headers=admin)
            assert put.status_code == 200, put.text
    return admin


def figures(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "n": [body[k] for k in ("n_responses", "n_answered", "n_blank")]
        + [body[k] for k in ("n_coded", "n_disputed", "n_uncoded")],
        "themes": {t["id"]: (t["mentions"], t["respondents"]) for t in body["themes"]},
        "categories": {c["id"]: c["respondents"] for t in body["themes"] for c in t["categories"]},
    }


def test_counts_follow_the_effective_sets(client: TestClient, coded: dict[str, str]) -> None:
    response = client.get(THEMES, headers=coded)
    assert response.status_code == 200, response.text
    body = response.json()
    # coded: agreed x3, single, resolved = 5; disputed 1; uncoded 1; blank 1
    assert figures(body) == {
        "n": [8, 7, 1, 5, 1, 1],
        "themes": {"relationship": (4, 3), "child_centred": (3, 3)},
        "categories": {"rapport": 2, "time": 2, "listening": 2, "honest": 1},
    }
    relationship = body["themes"][0]
    assert (relationship["label"], relationship["domain"]) == (
        "Relationship-based practice",
        "being",
    )
    assert relationship["percent_respondents"] == 60.0  # 3 of 5 coded
    assert [c["percent"] for c in relationship["categories"]] == [40.0, 40.0]
    assert [t["id"] for t in body["themes"]] == ["relationship", "child_centred"]


def test_filters_and_groups(client: TestClient, coded: dict[str, str]) -> None:
    police = client.get(THEMES, params={"q.role": "police"}, headers=coded).json()
    assert figures(police)["n"] == [3, 2, 1, 2, 0, 0]
    assert figures(police)["categories"] == {"rapport": 0, "time": 1, "listening": 2, "honest": 0}

    grouped = client.get(THEMES, params={"by": "site"}, headers=coded).json()
    assert grouped["by"] == "site"
    assert figures(grouped) == figures(client.get(THEMES, headers=coded).json())
    site_1, site_2 = grouped["groups"]
    assert (site_1["value"], site_1["label"]) == ("site-1", "Site 1")
    assert figures(site_1)["n"] == [4, 4, 0, 2, 1, 1]
    assert figures(site_2)["n"] == [4, 3, 1, 3, 0, 0]
    assert figures(site_2)["categories"] == {"rapport": 2, "time": 1, "listening": 0, "honest": 1}

    both = client.get(THEMES, params={"q.role": "other", "by": "role"}, headers=coded).json()
    by_role = {g["value"]: figures(g)["n"] for g in both["groups"]}
    assert by_role == {
        "police": [0, 0, 0, 0, 0, 0],
        "health": [0, 0, 0, 0, 0, 0],
        "other": [3, 3, 0, 2, 0, 1],
    }


def test_csv_has_a_line_per_category(client: TestClient, coded: dict[str, str]) -> None:
    response = client.get(THEMES, params={"format": "csv", "by": "site"}, headers=coded)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 3 * 4  # whole scope and two sites, four categories each
    assert list(rows[0])[:3] == ["group", "question", "n_responses"]
    first = rows[0]
    assert (first["group"], first["theme_id"], first["id"], first["respondents"]) == (
        "",
        "relationship",
        "rapport",
        "2",
    )
    assert rows[-1]["group"] == "site-2"
    assert rows[-1]["id"] == "honest"


def test_small_cells_and_mentions_are_withheld(
    client: TestClient, coded: dict[str, str], make_key: MakeKey
) -> None:
    body = client.get(THEMES, params={"min_cell": 2}, headers=coded).json()
    categories = {
        c["id"]: (c["respondents"], c["suppressed"])
        for t in body["themes"]
        for c in t["categories"]
    }
    assert categories["honest"] == (None, True)
    assert categories["rapport"] == (2, False)
    mentions = {t["id"]: t["mentions"] for t in body["themes"]}
    assert mentions == {"relationship": 4, "child_centred": None}
    # n_disputed and n_uncoded are 1 each: both withheld, and n_answered with them
    assert (body["n_disputed"], body["n_uncoded"]) == (None, None)

    evaluator = bearer(make_key("evaluator"))
    reader = client.get(THEMES, params={"min_cell": "5"}, headers=evaluator).json()
    assert reader["min_cell"] == 5
    # n_coded = 5 is the base: published; every category (1 or 2) is withheld
    assert reader["n_coded"] == 5
    assert all(c["respondents"] is None for t in reader["themes"] for c in t["categories"])
    assert all(t["mentions"] is None for t in reader["themes"])


def test_a_base_below_k_withholds_the_whole_table(
    client: TestClient, coded: dict[str, str], make_key: MakeKey
) -> None:
    evaluator = bearer(make_key("evaluator"))
    body = client.get(THEMES, params={"site": "site-1", "min_cell": "5"}, headers=evaluator).json()
    assert body["n_coded"] is None
    assert all(t["respondents"] is None for t in body["themes"])
    assert all(c["percent"] is None for t in body["themes"] for c in t["categories"])


def test_wrong_questions(client: TestClient, coded: dict[str, str]) -> None:
    assert_problem(client.get("/v1/surveys/trust/stats/themes/role", headers=coded), 422)
    assert_problem(client.get("/v1/surveys/trust/stats/themes/nope", headers=coded), 404)
    assert_problem(client.get(THEMES, params={"q.trust_actions": "x"}, headers=coded), 422)
