"""Composition and Likert statistics (contract §7.1, §7.2), their filters and groupings,
erasures and site-bound keys, and the requests they refuse, on both engines. Every
figure is checked against what the test computes from the data it submitted."""

import random
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.stats_support import (
    Headers,
    Json,
    Params,
    Row,
    create_survey,
    expected,
    get,
    load,
    project,
    random_rows,
    row,
)
from tests.conftest import MakeKey, assert_problem, bearer

STATS = "/v1/surveys/trust/stats"


@pytest.fixture
def evaluator(client: TestClient, admin: Headers, make_key: MakeKey) -> Headers:
    """An evaluator's headers, on the open survey (see `stats_support.open_definition`)."""
    create_survey(client, admin)
    return bearer(make_key("evaluator"))


@pytest.fixture
def generated(client: TestClient, evaluator: Headers) -> list[Row]:
    """A seeded data set of 60 responses over both sites and waves, stored by import."""
    rows = random_rows(random.Random(3), 60)
    load(client, evaluator, rows)
    return rows


# --- composition (§7.1) ---------------------------------------------------------------


def test_choice_composition_follows_option_order_with_zero_rows(
    client: TestClient, evaluator: Headers
) -> None:
    load(client, evaluator, [row(role="other")] * 3 + [row(role="police")] * 5)
    body = get(client, evaluator, "composition/role")
    assert body["question"] == "role"
    assert (body["n"], body["missing"]) == (8, 0)
    assert [(r["value"], r["label"], r["count"], r["percent"]) for r in body["rows"]] == [
        ("police", "Police", 5, 62.5),
        ("health", "Health services", 0, 0.0),
        ("other", "Other", 3, 37.5),
    ]
    assert not any(r["suppressed"] for r in body["rows"])
    assert body.get("by") is None
    assert body.get("groups") is None


def test_multi_choice_counts_responders_and_may_pass_100_percent(
    client: TestClient, evaluator: Headers
) -> None:
    load(
        client,
        evaluator,
        [
            row(agencies=["police", "school"]),
            row(agencies=["police", "ngo", "school"]),
            row(agencies=["police"]),
            row(),  # no answer
            row(agencies=[]),  # an empty list is no answer either
        ],
    )
    body = get(client, evaluator, "composition/agencies")
    assert (body["n"], body["missing"]) == (3, 2)
    assert [(r["value"], r["count"], r["percent"]) for r in body["rows"]] == [
        ("police", 3, 100.0),
        ("school", 2, 66.7),
        ("ngo", 1, 33.3),
    ]
    assert sum(r["percent"] for r in body["rows"]) > 100


def test_boolean_composition_is_true_then_false(client: TestClient, evaluator: Headers) -> None:
    load(client, evaluator, [row(involved=False)] * 2 + [row(involved=True), row()])
    body = get(client, evaluator, "composition/involved")
    assert (body["n"], body["missing"]) == (3, 1)
    assert [(r["value"], r["count"], r["percent"]) for r in body["rows"]] == [
        (True, 1, 33.3),
        (False, 2, 66.7),
    ]


def test_likert_composition_follows_the_scale(client: TestClient, evaluator: Headers) -> None:
    load(client, evaluator, [row(trust_confidence=v) for v in (5, 2, 2, 4)] + [row()])
    body = get(client, evaluator, "composition/trust_confidence")
    assert (body["n"], body["missing"]) == (4, 1)
    assert [(r["value"], r["label"], r["count"]) for r in body["rows"]] == [
        (1, "Not confident", 0),
        (2, "Somewhat unconfident", 2),
        (3, "Neither confident or unconfident", 0),
        (4, "Confident", 1),
        (5, "Very confident", 1),
    ]
    assert [r["percent"] for r in body["rows"]] == [0.0, 50.0, 0.0, 25.0, 25.0]


# --- Likert figures (§7.2) ------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "mean", "median", "top2", "bottom2"),
    [
        pytest.param((1, 2, 5, 5, 5), 3.6, 5.0, 60.0, 40.0, id="odd"),
        pytest.param((1, 1, 2, 5, 5, 5), 3.17, 3.5, 50.0, 50.0, id="even-half"),
        # 17 / 8 = 2.125 exactly: half-up gives 2.13 where round() would give 2.12
        pytest.param((1, 1, 2, 2, 2, 3, 3, 3), 2.13, 2.0, 0.0, 62.5, id="even-equal-middles"),
        pytest.param((4,) * 3 + (3,) * 4, 3.43, 3.0, 42.9, 0.0, id="thirds"),
    ],
)
def test_likert_mean_median_and_shares(
    client: TestClient,
    evaluator: Headers,
    values: tuple[int, ...],
    mean: float,
    median: float,
    top2: float,
    bottom2: float,
) -> None:
    load(client, evaluator, [row(trust_confidence=v) for v in values] + [row(), row()])
    body = get(client, evaluator, "likert/trust_confidence")
    assert (body["n"], body["missing"]) == (len(values), 2)
    assert [r["count"] for r in body["rows"]] == [values.count(v) for v in range(1, 6)]
    figures = (body["mean"], body["median"], body["top2_percent"], body["bottom2_percent"])
    assert figures == (mean, median, top2, bottom2)


def test_likert_of_nobody_has_no_figures(client: TestClient, evaluator: Headers) -> None:
    load(client, evaluator, [row(), row()])
    body = get(client, evaluator, "likert/trust_confidence")
    assert (body["n"], body["missing"]) == (0, 2)
    assert [r["percent"] for r in body["rows"]] == [None] * 5
    assert [body[k] for k in ("mean", "median", "top2_percent", "bottom2_percent")] == [None] * 4


# --- filters and groupings (§7 common parameters) -------------------------------------

SCOPES: list[Params] = [
    [],
    [("q.role", "police")],
    [("q.role", "police"), ("q.role", "other")],
    [("q.involved", "true")],
    [("q.involved", "false")],
    [("q.trust_confidence", "4"), ("q.trust_confidence", "5")],
    [("q.role", "health"), ("q.involved", "true")],
    [("q.role", "police"), ("q.trust_confidence", "3"), ("q.involved", "false")],
    [("site", "site-2")],
    [("wave", "final"), ("q.trust_confidence", "3")],
    [("site", "site-1"), ("site", "site-2"), ("wave", "midway"), ("q.role", "health")],
]
GROUPINGS = [None, "site", "wave", "role", "trust_confidence", "involved"]


@pytest.mark.parametrize("by", GROUPINGS)
def test_every_scope_and_grouping_matches_the_data(
    client: TestClient, evaluator: Headers, generated: list[Row], by: str | None
) -> None:
    """Both ways of counting (summary cells; stored rows, taken with several filters or
    a filter beside `by=<question>`) against the counts the test makes itself."""
    grouping: Params = [("by", by)] if by else []
    for scope in SCOPES:
        params = [*scope, *grouping]
        for question in ("role", "agencies", "involved"):
            if question == "involved" and by not in (None, "site", "role"):
                continue  # enough of booleans: keep the suite fast
            body = get(client, evaluator, f"composition/{question}", params)
            assert project(body) == expected(generated, question, params), (question, params)
        body = get(client, evaluator, "likert/trust_confidence", params)
        assert project(body) == expected(generated, "trust_confidence", params, likert=True)


def test_groups_carry_labels_in_definition_order(
    client: TestClient, evaluator: Headers, generated: list[Row]
) -> None:
    labels = {
        "site": [("site-1", "Site 1"), ("site-2", "Site 2")],
        "wave": [("midway", "Mid-stage survey"), ("final", "Final survey")],
        "role": [("police", "Police"), ("health", "Health services"), ("other", "Other")],
        "involved": [(True, "Yes"), (False, "No")],
    }
    for by, groups in labels.items():
        body = get(client, evaluator, "composition/agencies", [("by", by)])
        assert body["by"] == by
        assert [(g["value"], g["label"]) for g in body["groups"]] == groups
    body = get(client, evaluator, "likert/trust_confidence", [("by", "trust_confidence")])
    assert [g["value"] for g in body["groups"]] == [1, 2, 3, 4, 5]
    assert next(g["label"] for g in body["groups"]) == "Not confident"
    # a filter on the grouping keeps only its groups
    body = get(client, evaluator, "composition/role", [("by", "wave"), ("wave", "final")])
    assert [g["value"] for g in body["groups"]] == ["final"]


def test_rows_and_cells_agree_where_both_apply(
    client: TestClient, evaluator: Headers, generated: list[Row]
) -> None:
    """`role` is required, so a filter on all its options keeps every response: added to
    a query the cells answer, it sends the same question to the stored rows."""
    every_role = [("q.role", v) for v in ("police", "health", "other")]
    for params in (
        [("q.involved", "true"), ("by", "site")],
        [("q.trust_confidence", "3"), ("by", "wave")],
        [("by", "involved")],
        [("by", "trust_confidence"), ("site", "site-1")],
    ):
        for path in ("composition/agencies", "composition/role", "likert/trust_confidence"):
            by_cells = get(client, evaluator, path, params)
            by_rows = get(client, evaluator, path, [*params, *every_role])
            assert by_rows == by_cells, (path, params)
    # and a filtered group is the same table as the filter on that group's value
    grouped = get(client, evaluator, "composition/role", [("q.role", "police"), ("by", "involved")])
    for group, value in zip(grouped["groups"], ("true", "false"), strict=True):
        alone = get(client, evaluator, "composition/role", [("q.involved", value)])
        assert group["n"] == group["rows"][0]["count"] == alone["rows"][0]["count"]


# --- erasure and site-bound keys ------------------------------------------------------


def test_erased_responses_drop_out_of_every_statistic(
    client: TestClient, admin: Headers, evaluator: Headers, generated: list[Row]
) -> None:
    listed = client.get("/v1/surveys/trust/responses", params={"limit": 1000}, headers=admin)
    assert listed.status_code == 200, listed.text
    items: list[Json] = listed.json()["items"]
    assert len(items) == len(generated)
    erased = random.Random(5).sample(items, 12)
    for item in erased:
        deleted = client.delete(f"/v1/surveys/trust/responses/{item['id']}", headers=admin)
        assert deleted.status_code == 204, deleted.text
    gone = {item["id"] for item in erased}
    kept = [Row(i["site"], i["wave"], i["answers"]) for i in items if i["id"] not in gone]
    for params in (
        [],
        [("by", "site")],
        [("q.role", "police"), ("by", "wave")],
        [("q.role", "police"), ("by", "involved")],
        [("q.role", "health"), ("q.involved", "true")],
    ):
        for question in ("role", "agencies", "involved"):
            body = get(client, evaluator, f"composition/{question}", params)
            assert project(body) == expected(kept, question, params), (question, params)
        body = get(client, evaluator, "likert/trust_confidence", params)
        assert project(body) == expected(kept, "trust_confidence", params, likert=True)


@pytest.mark.parametrize("min_cell", [None, "5"])
def test_a_site_bound_key_sees_its_sites_only(
    client: TestClient, make_key: MakeKey, generated: list[Row], min_cell: str | None
) -> None:
    bound = bearer(make_key("evaluator", sites=["site-2"]))
    for params in ([], [("by", "site")], [("site", "site-2"), ("by", "wave")]):
        asked = params if min_cell is None else [*params, ("min_cell", min_cell)]
        body = get(client, bound, "composition/role", asked)
        truth = expected(generated, "role", params, sites=["site-2"])
        if min_cell is not None:  # suppression aside, the base and groups are those of site-2
            assert (body["n"], body.get("by")) == (truth["n"], truth.get("by"))
            groups = [g["value"] for g in body.get("groups") or []]
            assert groups == [g["value"] for g in truth.get("groups", [])]
        else:
            assert project(body) == truth
    for params in ([("site", "site-1")], [("site", "site-1"), ("site", "site-2")]):
        for path in ("composition/role", "likert/trust_confidence"):
            response = client.get(f"{STATS}/{path}", params=params, headers=bound)
            assert_problem(response, 403)


# --- refusals -------------------------------------------------------------------------

BAD_REQUESTS: list[tuple[str, Params, list[str | int]]] = [
    ("composition/role", [("q.nope", "x")], ["query", "q.nope"]),
    ("composition/role", [("q.role", "chef")], ["query", "q.role"]),
    ("composition/role", [("q.trust_confidence", "6")], ["query", "q.trust_confidence"]),
    ("composition/role", [("q.trust_confidence", "4.0")], ["query", "q.trust_confidence"]),
    ("composition/role", [("q.involved", "yes")], ["query", "q.involved"]),
    ("composition/role", [("q.agencies", "school")], ["query", "q.agencies"]),
    ("composition/role", [("q.years", "3")], ["query", "q.years"]),
    ("composition/role", [("q.trust_actions", "x")], ["query", "q.trust_actions"]),
    ("composition/role", [("by", "nope")], ["query", "by"]),
    ("composition/role", [("by", "years")], ["query", "by"]),
    ("composition/role", [("by", "trust_actions")], ["query", "by"]),
    ("composition/role", [("by", "agencies")], ["query", "by"]),
    ("composition/role", [("by", "Site")], ["query", "by"]),
    ("likert/trust_confidence", [("wave", "nope")], ["query", "wave"]),
    ("likert/trust_confidence", [("site", "nope")], ["query", "site"]),
    ("composition/role", [("min_cell", "0")], ["query", "min_cell"]),
    ("composition/role", [("min_cell", "x")], ["query", "min_cell"]),
    ("composition/role", [("format", "xml")], ["query", "format"]),
    ("composition/trust_actions", [], ["path", "question"]),
    ("composition/years", [], ["path", "question"]),
    ("likert/role", [], ["path", "question"]),
    ("likert/involved", [], ["path", "question"]),
    ("likert/role/compare", [("wave", "midway"), ("wave", "final")], ["path", "question"]),
    ("likert/trust_confidence/compare", [], ["query", "wave"]),
    ("likert/trust_confidence/compare", [("wave", "final")], ["query", "wave"]),
    ("themes/role", [], ["path", "question"]),
]


def test_bad_requests_are_422_naming_the_field(
    client: TestClient, evaluator: Headers, generated: list[Row]
) -> None:
    for path, params, loc in BAD_REQUESTS:
        for fmt in ("json", "csv"):
            query: list[tuple[str, Any]] = [*params, ("format", fmt)]
            if loc == ["query", "format"]:
                query = list(params)
            response = client.get(f"{STATS}/{path}", params=query, headers=evaluator)
            assert_problem(response, 422, loc)


def test_unknown_question_or_survey_is_404(client: TestClient, evaluator: Headers) -> None:
    for path in (
        f"{STATS}/composition/nope",
        f"{STATS}/likert/nope",
        f"{STATS}/likert/nope/compare?wave=midway&wave=final",
        f"{STATS}/themes/nope",
        "/v1/surveys/nope/stats/composition/role",
    ):
        assert_problem(client.get(path, headers=evaluator), 404)


@pytest.mark.parametrize("role", ["submitter", "coder"])
def test_submitters_and_coders_may_not_read_statistics(
    client: TestClient, evaluator: Headers, make_key: MakeKey, role: str
) -> None:
    headers = bearer(make_key(role))
    for path in (
        "composition/role",
        "likert/trust_confidence?by=site",
        "likert/trust_confidence/compare?wave=midway&wave=final",
        "composition/role?format=csv",
    ):
        assert_problem(client.get(f"{STATS}/{path}", headers=headers), 403)
