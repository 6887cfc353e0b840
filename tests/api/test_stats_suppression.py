"""Small-cell suppression (contract §7.5): who gets which K, what is hidden (primary and
secondary), as an evaluator asks for it with `?min_cell=K`, and an attacker that pools
everything such a key can fetch and tries to work a suppressed count out by adding and
subtracting; it must never succeed. Reader keys get no live statistics at all (403):
they see releases (`test_releases*.py`)."""

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.stats_attack import (
    Field,
    Var,
    attack,
    count_cells,
    count_relations,
    count_truth,
    members,
    shown,
    theme_cells,
    theme_relations,
)
from tests.api.stats_support import (
    THEMES,
    Headers,
    Json,
    Outcomes,
    Params,
    Row,
    coded_data_set,
    create_survey,
    get,
    get_k,
    load,
    random_rows,
    row,
)
from tests.conftest import MakeKey, assert_problem, bearer

COUNTED = ("role", "agencies", "involved", "trust_confidence")
GROUPINGS: list[Params] = [[], *[[("by", by)] for by in ("site", "wave", "role", "involved")]]
GROUPINGS.append([("by", "trust_confidence")])


@pytest.fixture
def keys(client: TestClient, admin: Headers, make_key: MakeKey) -> dict[str, Headers]:
    create_survey(client, admin)
    return {
        "evaluator": bearer(make_key("evaluator")),
        "reader": bearer(make_key("reader")),
    }


def counts(body: Json) -> list[int | None]:
    return [r["count"] for r in body["rows"]]


def flags(body: Json) -> list[bool]:
    return [r["suppressed"] for r in body["rows"]]


def roles(police: int, health: int, other: int, **answers: Any) -> list[Row]:
    return (
        [row(role="police", **answers)] * police
        + [row(role="health", **answers)] * health
        + [row(role="other", **answers)] * other
    )


# --- who gets which K -----------------------------------------------------------------


def test_a_reader_gets_a_403_pointing_to_releases(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    load(client, keys["evaluator"], roles(7, 4, 2))
    for path in ("composition/role", "likert/trust_confidence", "themes/trust_actions"):
        for params in ({}, {"min_cell": "5"}, {"min_cell": "50", "by": "site"}):
            response = client.get(
                f"/v1/surveys/trust/stats/{path}", params=params, headers=keys["reader"]
            )
            problem = assert_problem(response, 403)
            assert "/v1/surveys/trust/releases" in problem["detail"]


def test_an_evaluator_gets_exact_counts_unless_it_asks(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    load(client, keys["evaluator"], roles(7, 4, 2))
    evaluator = keys["evaluator"]
    exact = get(client, evaluator, "composition/role")
    assert exact["min_cell"] is None
    assert counts(exact) == [7, 4, 2]
    assert flags(exact) == [False] * 3
    # K=3 hides the 2, then the 4 (else 13 - 7 - 4 gives it away)
    asked = get(client, evaluator, "composition/role", [("min_cell", "3")])
    assert asked["min_cell"] == 3
    assert counts(asked) == [7, None, None]
    assert flags(asked) == [False, True, True]
    assert get(client, evaluator, "composition/role", [("min_cell", "2")])["rows"][1]["count"] == 4
    # a base below the K asked for hides the whole table
    big = get(client, evaluator, "composition/role", [("min_cell", "14")])
    assert (big["n"], big["missing"], counts(big)) == (None, None, [None] * 3)


# --- what is hidden -------------------------------------------------------------------


def test_zeros_are_published_and_an_exclusive_table_loses_its_next_smallest_cell(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    values = [2] * 3 + [3] * 6 + [4] * 8 + [5] * 9  # nobody answered 1
    load(client, keys["evaluator"], [row(trust_confidence=v) for v in values])
    body = get_k(client, keys["evaluator"], "likert/trust_confidence")
    assert (body["n"], body["missing"]) == (26, 0)
    assert counts(body) == [0, None, None, 8, 9]
    assert flags(body) == [False, True, True, False, False]
    assert [r["percent"] for r in body["rows"]] == [0.0, None, None, 30.8, 34.6]
    # figures derived from the cells stay published (base >= K): 101 / 26 = 3.88...
    figures = ("mean", "median", "top2_percent", "bottom2_percent")
    assert [body[f] for f in figures] == [3.88, 4.0, 65.4, 11.5]


def test_a_boolean_with_one_small_side_hides_both(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    load(client, keys["evaluator"], [row(involved=True)] * 12 + [row(involved=False)] * 2)
    body = get_k(client, keys["evaluator"], "composition/involved")
    assert (body["n"], counts(body), flags(body)) == (14, [None, None], [True, True])


def test_a_multi_choice_table_needs_no_secondary_suppression(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    """Its rows overlap, so no row can be worked out from `n` and the others."""
    chosen = [["police", "school", "ngo"]] * 2 + [["school", "ngo"]] * 5 + [["ngo"]] * 2
    load(client, keys["evaluator"], [row(agencies=c) for c in chosen] + [row()] * 6)
    body = get_k(client, keys["evaluator"], "composition/agencies")
    assert (body["n"], body["missing"]) == (9, 6)
    assert counts(body) == [None, 7, 9]
    assert flags(body) == [True, False, False]
    assert [r["percent"] for r in body["rows"]] == [None, 77.8, 100.0]


@pytest.mark.parametrize(("unanswered", "shown_as"), [(0, 0), (3, None), (5, 5)])
def test_missing_is_a_cell(
    client: TestClient, keys: dict[str, Headers], unanswered: int, shown_as: int | None
) -> None:
    rows = [row(involved=True)] * 6 + [row(involved=False)] * 7 + [row()] * unanswered
    load(client, keys["evaluator"], rows)
    body = get_k(client, keys["evaluator"], "composition/involved")
    assert (body["n"], body["missing"], counts(body)) == (13, shown_as, [6, 7])


def test_a_base_below_k_nulls_the_whole_table(client: TestClient, keys: dict[str, Headers]) -> None:
    load(client, keys["evaluator"], [row(trust_confidence=v) for v in (1, 4, 4, 5)] + [row()] * 9)
    for path in ("likert/trust_confidence", "composition/trust_confidence"):
        body = get_k(client, keys["evaluator"], path)
        assert (body["n"], body["missing"]) == (None, None)
        assert counts(body) == [None] * 5
        assert flags(body) == [True] * 5
        assert [r["percent"] for r in body["rows"]] == [None] * 5
        for figure in ("mean", "median", "top2_percent", "bottom2_percent"):
            assert body.get(figure) is None
    exact = get(client, keys["evaluator"], "likert/trust_confidence")
    assert (exact["n"], exact["missing"], exact["median"]) == (4, 9, 4.0)


def test_a_small_group_is_nulled_and_the_whole_scope_shows_as_alone(
    client: TestClient, keys: dict[str, Headers]
) -> None:
    rows = roles(9, 6, 5) + roles(2, 1, 0, site="site-2") + roles(0, 6, 0, wave="final")
    load(client, keys["evaluator"], rows)
    reader = keys["evaluator"]
    plain = get_k(client, reader, "composition/role")
    by_site = get_k(client, reader, "composition/role", [("by", "site")])
    site_2 = by_site["groups"][1]
    assert (site_2["n"], site_2["missing"], counts(site_2)) == (None, None, [None] * 3)
    # the whole scope is published as it is alone, so the only other group goes too
    site_1 = by_site["groups"][0]
    assert (site_1["n"], site_1["missing"], counts(site_1)) == (None, None, [None] * 3)
    assert (plain["n"], counts(plain)) == (29, [11, 13, 5])
    for grouping in GROUPINGS:
        body = get_k(client, reader, "composition/role", grouping)
        whole = {k: body[k] for k in ("n", "missing", "rows")}
        assert whole == {k: plain[k] for k in ("n", "missing", "rows")}, grouping


# --- the attacker ---------------------------------------------------------------------


def check_published(
    body: Json,
    truth: Callable[[Var], int],
    question: str,
    params: Params,
    k: int,
    cells: Callable[[Json], Iterator[tuple[Field, int | None]]],
) -> None:
    """Primary suppression: nothing from 1 to K-1 is shown, and percentages go with
    their counts."""
    for var, value in shown(question, params, body, cells):
        if 0 < truth(var) < k:
            assert value is None, (var, truth(var), params)
    for table in [body, *(body.get("groups") or [])]:
        for r in table.get("rows", []):
            assert r["suppressed"] == (r["count"] is None)
            assert (r["percent"] is None) == (r["count"] is None or not table["n"])


def test_no_suppressed_count_can_be_worked_out(
    client: TestClient, admin: Headers, keys: dict[str, Headers]
) -> None:
    """Seeded small data sets; for each, every composition and likert table with every
    grouping, pooled."""
    relations = [rel for question in COUNTED for rel in count_relations(question)]
    tried = 0
    for seed in range(10):
        rng = random.Random(seed)
        survey = f"attack-{seed}"
        create_survey(client, admin, survey)
        rows = random_rows(rng, rng.randrange(8, 40))
        load(client, admin, rows, survey)
        truth = count_truth(rows)
        bodies = []
        for question in COUNTED:
            path = (
                f"likert/{question}"
                if question == "trust_confidence"
                else f"composition/{question}"
            )
            for grouping in GROUPINGS:
                body = get_k(client, keys["evaluator"], path, grouping, survey=survey)
                check_published(body, truth, question, grouping, 5, count_cells)
                bodies.append((question, grouping, body))
                tried += sum(
                    1 for var, v in shown(question, grouping, body, count_cells) if v is None
                )
        assert attack(truth, bodies, relations) == {}, seed
    assert tried > 500  # the data sets do have small cells


def theme_truth(rows: list[Row], outcome: Outcomes) -> Callable[[Var], int]:
    def truth(var: Var) -> int:
        _, scope, field = var
        found = [outcome.get(id(r), ("blank", None)) for r in members(rows, scope)]
        statuses = [s for s, _ in found]
        sets = [e for _, e in found if e is not None]
        n = {
            "n_responses": len(found),
            "n_answered": len(found) - statuses.count("blank"),
            "n_blank": statuses.count("blank"),
            "n_coded": len(sets),
            "n_disputed": statuses.count("disputed"),
            "n_uncoded": statuses.count("uncoded"),
        }
        if field[0] in n:
            return n[field[0]]
        if field[0] == "c":
            return sum(field[1] in e for e in sets)
        return sum(bool(e & set(THEMES[field[1]])) for e in sets)

    return truth


def test_no_suppressed_theme_count_can_be_worked_out(
    client: TestClient, admin: Headers, keys: dict[str, Headers], make_key: MakeKey
) -> None:
    coders = [bearer(make_key("evaluator", name=name)) for name in ("coder-a", "coder-b")]
    relations = theme_relations("trust_actions", THEMES)
    for seed in range(4):
        survey = f"themes-{seed}"
        rng = random.Random(seed)
        rows, outcome = coded_data_set(client, admin, coders, survey, rng, rng.randrange(15, 50))
        truth = theme_truth(rows, outcome)
        bodies = []
        for grouping in GROUPINGS:
            exact = get(client, keys["evaluator"], "themes/trust_actions", grouping, survey=survey)
            for var, value in shown("trust_actions", grouping, exact, theme_cells):
                assert value == truth(var), (var, grouping)
            body = get_k(client, keys["evaluator"], "themes/trust_actions", grouping, survey=survey)
            check_published(body, truth, "trust_actions", grouping, 5, theme_cells)
            for table in [body, *(body.get("groups") or [])]:
                for theme in table["themes"]:
                    published = [c["respondents"] for c in theme["categories"]]
                    assert theme["mentions"] == (None if None in published else sum(published))
            bodies.append(("trust_actions", grouping, body))
        assert attack(truth, bodies, relations, cells=theme_cells) == {}, seed
