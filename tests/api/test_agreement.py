"""Agreement and discrepancies between two coders over HTTP (contract §6)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import MakeKey, assert_problem, bearer, submission

CODEBOOK_URL = "/v1/surveys/trust/codebooks/trust_actions"
AGREEMENT = CODEBOOK_URL + "/agreement?coders=coder-a,coder-b"
DISCREPANCIES = CODEBOOK_URL + "/discrepancies?coders=coder-a,coder-b"

# Codebook order is not alphabetical, so the body's order shows it follows the codebook.
CODEBOOK: dict[str, Any] = {
    "themes": [
        {
            "id": "relationship",
            "label": "Relationship-based practice",
            "categories": [
                {"id": "rapport", "label": "Rapport"},
                {"id": "listening", "label": "Listening"},
            ],
        },
        {
            "id": "ethical",
            "label": "An ethically-grounded approach",
            "categories": [
                {"id": "honest", "label": "Honest"},
                {"id": "rights", "label": "Rights"},
            ],
        },
    ]
}

# (site, coder-a's set, coder-b's set, coder-c's set); None: not coded by that coder.
PLAN: list[tuple[str, list[str] | None, list[str] | None, list[str] | None]] = [
    ("site-1", ["rapport", "listening"], ["listening", "rapport"], None),  # r1 identical
    ("site-1", ["rapport"], [], None),  # r2 differs
    ("site-2", [], ["honest"], None),  # r3 differs
    ("site-2", ["listening"], ["listening"], None),  # r4 identical
    ("site-1", ["rapport"], None, ["rapport"]),  # r5 only coder-a of the two: no unit
    ("site-1", ["honest"], ["honest"], ["rights"]),  # r6 identical; coder-c is no matter
    ("site-2", None, None, None),  # r7 never coded
]


@pytest.fixture
def coded(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> list[str]:
    """The plan's responses, coded blind by three coder keys; returns their ids."""
    put = client.put(CODEBOOK_URL, json=CODEBOOK, headers=admin)
    assert put.status_code == 200, put.text
    coders = [bearer(make_key("coder", name=n)) for n in ("coder-a", "coder-b", "coder-c")]
    ids = []
    for site, *sets in PLAN:
        created = client.post(
            "/v1/surveys/trust/responses",
            json={**submission(trust_actions="Listen and be honest."), "site": site},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        response_id = created.json()["id"]
        ids.append(response_id)
        for headers, categories in zip(coders, sets, strict=True):
            if categories is not None:
                coding = client.put(
                    f"/v1/surveys/trust/responses/{response_id}/codings/trust_actions",
                    json={"categories": categories},
                    headers=headers,
                )
                assert coding.status_code == 200, coding.text
    return ids


def consensus(
    client: TestClient, headers: dict[str, str], response_id: str, cats: list[str]
) -> None:
    put = client.put(
        f"/v1/surveys/trust/responses/{response_id}/codings/trust_actions/consensus",
        json={"categories": cats},
        headers=headers,
    )
    assert put.status_code == 200, put.text


def test_agreement_over_the_answers_both_coded(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, coded: list[str]
) -> None:
    evaluator = bearer(make_key("evaluator"))
    response = client.get(AGREEMENT, headers=evaluator)
    assert response.status_code == 200, response.text
    body = response.json()
    # Units: r1, r2, r3, r4, r6 (r5 coder-a only, r7 uncoded).
    assert body["coders"] == ["coder-a", "coder-b"]
    assert body["n_units"] == 5
    assert body["categories"] == [
        # rapport: A r1, r2; B r1; both r1. Agree 5 - 2 - 1 + 2 = 4 of 5 = 80.0.
        # E = 2*1 + 3*4 = 14: kappa = (5*4 - 14)/(25 - 14) = 6/11 = 0.5454... -> 0.545.
        {
            "id": "rapport",
            "a_count": 2,
            "b_count": 1,
            "both": 1,
            "percent_agreement": 80.0,
            "kappa": 0.545,
        },
        # listening: both coders r1, r4: agree 5 of 5; E = 2*2 + 3*3 = 13: kappa 12/12 = 1.
        {
            "id": "listening",
            "a_count": 2,
            "b_count": 2,
            "both": 2,
            "percent_agreement": 100.0,
            "kappa": 1.0,
        },
        # honest: A r6; B r3, r6; both r6. Agree 4 of 5; E = 1*2 + 4*3 = 14: kappa 6/11.
        {
            "id": "honest",
            "a_count": 1,
            "b_count": 2,
            "both": 1,
            "percent_agreement": 80.0,
            "kappa": 0.545,
        },
        # rights: coder-c's alone, so neither A nor B: p_e = 1, kappa null.
        {
            "id": "rights",
            "a_count": 0,
            "b_count": 0,
            "both": 0,
            "percent_agreement": 100.0,
            "kappa": None,
        },
    ]
    assert body["overall"] == {
        # identical: r1, r4, r6 = 3 of 5.
        "percent_agreement": 60.0,
        # (6/11 + 1 + 6/11)/3 = 23/33 = 0.69696... -> 0.697
        "mean_kappa": 0.697,
        # 5 x 4 = 20 pairs, n = 40 values; differing pairs 1 (rapport) + 1 (honest):
        # o[0,1] = o[1,0] = 2; n_1 = 3 + 4 + 3 + 0 = 10, n_0 = 30;
        # alpha = 1 - 39*4/(2*30*10) = 1 - 156/600 = 0.74.
        "krippendorff_alpha": 0.74,
    }
    assert client.get(AGREEMENT, headers=admin).json() == body


def test_agreement_swapped_coders_swap_the_counts(
    client: TestClient, admin: dict[str, str], coded: list[str]
) -> None:
    forward = client.get(AGREEMENT, headers=admin).json()
    swapped = client.get(CODEBOOK_URL + "/agreement?coders=coder-b,coder-a", headers=admin)
    assert swapped.status_code == 200, swapped.text
    body = swapped.json()
    assert body["coders"] == ["coder-b", "coder-a"]
    assert [(c["a_count"], c["b_count"]) for c in body["categories"]] == [
        (c["b_count"], c["a_count"]) for c in forward["categories"]
    ]
    assert [c["kappa"] for c in body["categories"]] == [c["kappa"] for c in forward["categories"]]
    assert body["overall"] == forward["overall"]


def test_agreement_of_coders_with_nothing_in_common(
    client: TestClient, admin: dict[str, str], coded: list[str]
) -> None:
    response = client.get(CODEBOOK_URL + "/agreement?coders=coder-a,nobody", headers=admin)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["n_units"] == 0
    assert [c["id"] for c in body["categories"]] == ["rapport", "listening", "honest", "rights"]
    assert {c["kappa"] for c in body["categories"]} == {None}
    assert {c["percent_agreement"] for c in body["categories"]} == {None}
    assert body["overall"] == {
        "percent_agreement": None,
        "mean_kappa": None,
        "krippendorff_alpha": None,
    }


def test_discrepancies_with_their_consensus(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, coded: list[str]
) -> None:
    evaluator = bearer(make_key("evaluator"))
    consensus(client, evaluator, coded[1], ["rapport"])
    response = client.get(DISCREPANCIES, headers=evaluator)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "items": [
            {"response_id": coded[1], "a": ["rapport"], "b": [], "consensus": ["rapport"]},
            {"response_id": coded[2], "a": [], "b": ["honest"], "consensus": None},
        ],
        "next_cursor": None,
    }
    # A consensus does not make the coders agree: agreement is about the coders alone.
    assert client.get(AGREEMENT, headers=evaluator).json()["overall"]["percent_agreement"] == 60.0
    # An empty consensus is a consensus, not null.
    consensus(client, evaluator, coded[2], [])
    items = client.get(DISCREPANCIES, headers=evaluator).json()["items"]
    assert [i["consensus"] for i in items] == [["rapport"], []]


def test_discrepancies_are_paginated_in_response_order(
    client: TestClient, admin: dict[str, str], coded: list[str]
) -> None:
    first = client.get(DISCREPANCIES + "&limit=1", headers=admin)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [i["response_id"] for i in page["items"]] == [coded[1]]
    assert page["next_cursor"]
    second = client.get(DISCREPANCIES + f"&limit=1&cursor={page['next_cursor']}", headers=admin)
    assert second.status_code == 200, second.text
    assert [i["response_id"] for i in second.json()["items"]] == [coded[2]]
    assert second.json()["next_cursor"] is None
    two = client.get(DISCREPANCIES + "&limit=2", headers=admin).json()
    assert [i["response_id"] for i in two["items"]] == [coded[1], coded[2]]
    assert two["next_cursor"] is None


def test_a_site_bound_evaluator_sees_only_its_sites(
    client: TestClient, make_key: MakeKey, coded: list[str]
) -> None:
    site2 = bearer(make_key("evaluator", sites=["site-2"]))
    body = client.get(AGREEMENT, headers=site2).json()
    # Units of site-2: r3 (a [], b [honest]) and r4 (listening, both).
    assert body["n_units"] == 2
    counts = {c["id"]: (c["a_count"], c["b_count"], c["both"]) for c in body["categories"]}
    assert counts == {
        "rapport": (0, 0, 0),
        "listening": (1, 1, 1),
        "honest": (0, 1, 0),
        "rights": (0, 0, 0),
    }
    assert body["overall"]["percent_agreement"] == 50.0
    items = client.get(DISCREPANCIES, headers=site2).json()["items"]
    assert [i["response_id"] for i in items] == [coded[2]]


def test_an_erased_response_no_longer_counts(
    client: TestClient, admin: dict[str, str], coded: list[str]
) -> None:
    erased = client.delete(f"/v1/surveys/trust/responses/{coded[1]}", headers=admin)
    assert erased.status_code == 204, erased.text
    assert client.get(AGREEMENT, headers=admin).json()["n_units"] == 4
    items = client.get(DISCREPANCIES, headers=admin).json()["items"]
    assert [i["response_id"] for i in items] == [coded[2]]


@pytest.mark.parametrize("endpoint", ["agreement", "discrepancies"])
@pytest.mark.parametrize(
    "query",
    ["", "?coders=", "?coders=coder-a", "?coders=coder-a,coder-a", "?coders=a,b,c", "?coders=,b"],
)
def test_coders_must_name_two_distinct_coders(
    client: TestClient, admin: dict[str, str], coded: list[str], endpoint: str, query: str
) -> None:
    response = client.get(f"{CODEBOOK_URL}/{endpoint}{query}", headers=admin)
    assert_problem(response, 422, ["query", "coders"])


def test_a_malformed_cursor_is_422(
    client: TestClient, admin: dict[str, str], coded: list[str]
) -> None:
    for cursor in ("%%%", "bnVsbA", "dHJ1ZQ", "LTE"):  # garbage, null, true, -1
        response = client.get(DISCREPANCIES + f"&cursor={cursor}", headers=admin)
        assert_problem(response, 422, ["query", "cursor"])


@pytest.mark.parametrize("endpoint", ["agreement", "discrepancies"])
def test_no_codebook_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], endpoint: str
) -> None:
    for path in (
        f"/v1/surveys/trust/codebooks/trust_actions/{endpoint}",
        f"/v1/surveys/trust/codebooks/role/{endpoint}",
        f"/v1/surveys/nope/codebooks/trust_actions/{endpoint}",
    ):
        response = client.get(path + "?coders=coder-a,coder-b", headers=admin)
        assert_problem(response, 404)


@pytest.mark.parametrize("role", ["coder", "reader", "submitter"])
def test_only_evaluators_and_admins_compare_coders(
    client: TestClient, make_key: MakeKey, coded: list[str], role: str
) -> None:
    headers = bearer(make_key(role))
    assert_problem(client.get(AGREEMENT, headers=headers), 403)
    assert_problem(client.get(DISCREPANCIES, headers=headers), 403)
