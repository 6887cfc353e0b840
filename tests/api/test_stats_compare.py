"""Wave comparison (contract §7.4): each wave's §7.2 body, exact differences rounded
half-up, and the Mann-Whitney U test exactly as scipy computes it on the same answers."""

import random
from fractions import Fraction

import pytest
from fastapi.testclient import TestClient
from scipy.stats import mannwhitneyu

from tests.api.stats_support import (
    Headers,
    Json,
    Params,
    Row,
    create_survey,
    expected,
    get,
    in_scope,
    load,
    project,
    random_rows,
    row,
)
from tests.conftest import MakeKey, assert_problem, bearer

COMPARE = "likert/trust_confidence/compare"


def rounded(value: Fraction, places: int) -> float:
    """Half away from zero, the test's own way."""
    scale = 10**places
    magnitude = int(abs(value) * scale + Fraction(1, 2))
    result: float = (magnitude if value >= 0 else -magnitude) / scale
    return result


def answers(rows: list[Row], wave: str, params: Params) -> list[int]:
    return [
        r.answers["trust_confidence"]
        for r in in_scope(rows, params)
        if r.wave == wave and "trust_confidence" in r.answers
    ]


def check(body: Json, rows: list[Row], a: str, b: str, params: Params) -> None:
    first, second = answers(rows, a, params), answers(rows, b, params)
    assert body["question"] == "trust_confidence"
    assert [w["wave"] for w in body["waves"]] == [a, b]
    for side, wave in zip(body["waves"], (a, b), strict=True):
        assert side["question"] == "trust_confidence"
        truth = expected(rows, "trust_confidence", [*params, ("wave", wave)], likert=True)
        assert project(side) == truth
    mean = Fraction(sum(second), len(second)) - Fraction(sum(first), len(first))
    top2 = Fraction(100 * sum(v >= 4 for v in second), len(second)) - Fraction(
        100 * sum(v >= 4 for v in first), len(first)
    )
    assert body["mean_difference"] == rounded(mean, 2)
    assert body["top2_difference"] == rounded(top2, 1)
    test = mannwhitneyu(first, second)
    assert body["u"] == pytest.approx(float(test.statistic), abs=1e-12)
    assert body["p_value"] == pytest.approx(float(test.pvalue), abs=1e-12)


@pytest.fixture
def evaluator(client: TestClient, admin: Headers, make_key: MakeKey) -> Headers:
    create_survey(client, admin)
    return bearer(make_key("evaluator"))


def test_compare_matches_scipy_on_a_generated_data_set(
    client: TestClient, evaluator: Headers
) -> None:
    rows = random_rows(random.Random(11), 90)
    load(client, evaluator, rows)
    for scope in (
        [],
        [("site", "site-1")],
        [("q.role", "police")],
        [("q.role", "police"), ("q.involved", "true")],
    ):
        for a, b in (("midway", "final"), ("final", "midway")):
            params = [*scope, ("wave", a), ("wave", b)]
            body = get(client, evaluator, COMPARE, params)
            check(body, rows, a, b, scope)
            assert body["min_cell"] is None


def test_swapping_the_waves_negates_the_differences(client: TestClient, evaluator: Headers) -> None:
    # 2.125 - 3.0 = -0.875: half away from zero both ways, so the two stay opposite
    midway = [row(trust_confidence=v) for v in (1, 1, 2, 2, 2, 3, 3, 3)]
    final = [row(wave="final", trust_confidence=v) for v in (3, 3, 3, 3, 4, 2)]
    load(client, evaluator, midway + final)
    ab = get(client, evaluator, COMPARE, [("wave", "midway"), ("wave", "final")])
    ba = get(client, evaluator, COMPARE, [("wave", "final"), ("wave", "midway")])
    assert ab["mean_difference"] == 0.88
    assert ba["mean_difference"] == -0.88
    assert ab["top2_difference"] == 16.7
    assert ba["top2_difference"] == -16.7
    assert ab["u"] + ba["u"] == 8 * 6
    assert ab["p_value"] == pytest.approx(ba["p_value"], abs=1e-12)
    check(ab, midway + final, "midway", "final", [])


def test_compare_without_ties_uses_scipys_exact_test(
    client: TestClient, evaluator: Headers
) -> None:
    rows = [row(trust_confidence=v) for v in (1, 2, 3)] + [
        row(wave="final", trust_confidence=v) for v in (4, 5)
    ]
    load(client, evaluator, rows)
    body = get(client, evaluator, COMPARE, [("wave", "midway"), ("wave", "final")])
    check(body, rows, "midway", "final", [])
    assert body["u"] == 0.0
    assert body["p_value"] == pytest.approx(0.2, abs=1e-12)  # 2 of the 10 orderings


def test_an_empty_wave_has_no_comparison(client: TestClient, evaluator: Headers) -> None:
    load(client, evaluator, [row(trust_confidence=v) for v in (1, 2, 3)] + [row(wave="final")])
    body = get(client, evaluator, COMPARE, [("wave", "midway"), ("wave", "final")])
    assert body["waves"][1]["n"] == 0
    assert body["waves"][1]["missing"] == 1
    assert body["waves"][0]["n"] == 3
    figures = ("mean_difference", "top2_difference", "u", "p_value")
    assert [body[k] for k in figures] == [None] * 4


def test_a_suppressed_comparison_hides_a_small_wave(
    client: TestClient, evaluator: Headers, make_key: MakeKey
) -> None:
    rows = [row(trust_confidence=v) for v in (1, 2, 3, 4, 4, 5)] + [
        row(wave="final", trust_confidence=v) for v in (2, 3, 5, 5)
    ]
    load(client, evaluator, rows)
    suppressed = bearer(make_key("evaluator"))
    body = get(
        client, suppressed, COMPARE, [("wave", "midway"), ("wave", "final"), ("min_cell", "5")]
    )
    assert body["min_cell"] == 5
    assert body["waves"][0]["n"] == 6
    assert body["waves"][0]["mean"] == 3.17
    small = body["waves"][1]
    assert [small[k] for k in ("n", "mean", "median", "top2_percent")] == [None] * 4
    assert all(r["count"] is None and r["percent"] is None for r in small["rows"])
    figures = ("mean_difference", "top2_difference", "u", "p_value")
    assert [body[k] for k in figures] == [None] * 4
    exact = get(client, evaluator, COMPARE, [("wave", "midway"), ("wave", "final")])
    check(exact, rows, "midway", "final", [])


def test_compare_needs_exactly_two_distinct_waves(client: TestClient, evaluator: Headers) -> None:
    for params in (
        [],
        [("wave", "midway")],
        [("wave", "midway"), ("wave", "midway")],
    ):
        response = client.get(
            f"/v1/surveys/trust/stats/{COMPARE}", params=params, headers=evaluator
        )
        assert_problem(response, 422, ["query", "wave"])
