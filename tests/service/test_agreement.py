"""Agreement between two coders (contract §6): hand-worked examples, the undefined cases,
and random data against the `krippendorff` package and plain reference formulas."""

import random
from fractions import Fraction

import krippendorff
import numpy as np
import pytest

from service.coding.agreement import Unit, agreement, cohen_kappa, nominal_alpha
from service.stats.numbers import half_up, percent

CODERS = ("coder-a", "coder-b")


def test_percent_is_half_up_from_exact_integers() -> None:
    assert percent(5, 68) == 7.4  # 7.35294... (contract §1)
    assert percent(23, 102) == 22.5  # 22.549...
    assert percent(1, 16) == 6.3  # exactly 6.25: a tie goes up, not to even
    assert percent(1, 3) == 33.3
    assert percent(2, 3) == 66.7
    assert percent(0, 7) == 0.0
    assert percent(7, 7) == 100.0
    assert percent(0, 0) is None


def test_half_up_takes_ties_away_from_zero() -> None:
    assert half_up(Fraction(1, 16), 3) == 0.063  # 0.0625; round(0.0625, 3) is 0.062
    assert half_up(Fraction(-1, 16), 3) == -0.063
    assert half_up(Fraction(-5, 16), 3) == -0.313
    assert half_up(Fraction(4999, 10_000_000), 3) == 0.0
    assert half_up(Fraction(5, 10_000), 3) == 0.001
    assert half_up(Fraction(-1, 10_000), 3) == 0.0


def test_kappa_worked_by_hand() -> None:
    # n = 12, A gives the category 2 times, B 5 times, both together once.
    # Agreements: 1 both present + (12 - 2 - 5 + 1) = 6 both absent = 7.
    # p_o = 7/12 = 84/144; p_e = (2*5 + 10*7)/144 = 80/144.
    # kappa = (84 - 80)/(144 - 80) = 4/64 = 1/16 = 0.0625.
    assert cohen_kappa(n=12, a=2, b=5, both=1) == Fraction(1, 16)
    # n = 7, a = 1, b = 5, both = 0: agreements 0 + (7 - 1 - 5) = 1.
    # p_o = 7/49; p_e = (1*5 + 6*2)/49 = 17/49; kappa = (7 - 17)/(49 - 17) = -10/32.
    assert cohen_kappa(n=7, a=1, b=5, both=0) == Fraction(-5, 16)
    # Perfect agreement with variation: kappa 1.
    assert cohen_kappa(n=4, a=2, b=2, both=2) == 1
    # p_e = 1: neither coder ever gives it, or both always do.
    assert cohen_kappa(n=9, a=0, b=0, both=0) is None
    assert cohen_kappa(n=9, a=9, b=9, both=9) is None
    # One coder constant, the other not: p_e < 1, kappa 0.
    # n = 4, a = 4, b = 2: p_o = 2/4 = 8/16, p_e = (4*2 + 0*2)/16 = 8/16.
    assert cohen_kappa(n=4, a=4, b=2, both=2) == 0
    assert cohen_kappa(n=0, a=0, b=0, both=0) is None


# Codebook order: rapport, listening, time, rights. Twelve answers both coded.
HAND_UNITS = [
    Unit("r01", ["rapport", "listening"], ["listening", "rapport"]),
    Unit("r02", ["rapport"], []),
    Unit("r03", [], ["rapport"]),
    Unit("r04", ["listening"], ["rapport", "listening"]),
    Unit("r05", ["listening"], ["listening", "rapport"]),
    Unit("r06", ["listening", "rights"], ["listening"]),
    Unit("r07", ["listening"], ["listening"]),
    Unit("r08", ["listening"], ["listening"]),
    Unit("r09", [], ["rapport"]),
    Unit("r10", [], []),
    Unit("r11", [], []),
    Unit("r12", [], []),
]


def test_agreement_body_worked_by_hand() -> None:
    body = agreement(
        ["rapport", "listening", "time", "rights"],
        HAND_UNITS,
        question="trust_actions",
        coders=CODERS,
    ).model_dump()
    assert body["question"] == "trust_actions"
    assert body["coders"] == ["coder-a", "coder-b"]
    assert body["n_units"] == 12
    assert body["categories"] == [
        # rapport: A in r01, r02 (2); B in r01, r03, r04, r05, r09 (5); both in r01 (1).
        # Agree on 1 + (12 - 2 - 5 + 1) = 7 of 12 = 58.333... -> 58.3; kappa 1/16 -> 0.063.
        {
            "id": "rapport",
            "a_count": 2,
            "b_count": 5,
            "both": 1,
            "percent_agreement": 58.3,
            "kappa": 0.063,
        },
        # listening: both coders in r01, r04-r08 (6 each, 6 together): agree on 12 of 12.
        # p_o = 1, p_e = (6*6 + 6*6)/144 = 1/2, kappa = (1 - 1/2)/(1 - 1/2) = 1.
        {
            "id": "listening",
            "a_count": 6,
            "b_count": 6,
            "both": 6,
            "percent_agreement": 100.0,
            "kappa": 1.0,
        },
        # time: never given: agree everywhere, but p_e = (0 + 12*12)/144 = 1, kappa null.
        {
            "id": "time",
            "a_count": 0,
            "b_count": 0,
            "both": 0,
            "percent_agreement": 100.0,
            "kappa": None,
        },
        # rights: A once (r06), B never. Agree on 11 of 12 = 91.666... -> 91.7.
        # p_o = 11/12 = 132/144, p_e = (1*0 + 11*12)/144 = 132/144, kappa = 0.
        {
            "id": "rights",
            "a_count": 1,
            "b_count": 0,
            "both": 0,
            "percent_agreement": 91.7,
            "kappa": 0.0,
        },
    ]
    assert body["overall"] == {
        # identical sets: r01, r07, r08, r10, r11, r12 = 6 of 12 = 50.0.
        "percent_agreement": 50.0,
        # mean of the exact non-null kappas: (1/16 + 1 + 0)/3 = 17/48 = 0.35416... -> 0.354
        # (the mean of the rounded ones, (0.063 + 1 + 0)/3 = 0.35433..., would agree here,
        # but is not what is computed).
        "mean_kappa": 0.354,
        # 12 units x 4 categories = 48 pairs of presence values, n = 96 values.
        # Disagreeing pairs: rapport 2 + 5 - 2*1 = 5, rights 1: o[0,1] = o[1,0] = 6.
        # n_1 = values 1 = (2 + 5) + (6 + 6) + 0 + (1 + 0) = 20; n_0 = 96 - 20 = 76.
        # alpha = 1 - (n - 1)(o[0,1] + o[1,0]) / (2 n_0 n_1) = 1 - 95*12/3040 = 1 - 3/8.
        "krippendorff_alpha": 0.625,
    }


def test_hand_example_alpha_matches_the_krippendorff_package() -> None:
    categories = ["rapport", "listening", "time", "rights"]
    data = [  # coders x (unit, category) pairs
        [int(c in u.a) for u in HAND_UNITS for c in categories],
        [int(c in u.b) for u in HAND_UNITS for c in categories],
    ]
    assert krippendorff.alpha(reliability_data=data, level_of_measurement="nominal") == (
        pytest.approx(0.625)
    )


def test_no_units_leaves_every_ratio_undefined() -> None:
    body = agreement(["rapport", "listening"], [], question="q", coders=CODERS).model_dump()
    assert body["n_units"] == 0
    assert body["categories"] == [
        {
            "id": c,
            "a_count": 0,
            "b_count": 0,
            "both": 0,
            "percent_agreement": None,
            "kappa": None,
        }
        for c in ("rapport", "listening")
    ]
    assert body["overall"] == {
        "percent_agreement": None,
        "mean_kappa": None,
        "krippendorff_alpha": None,
    }


def test_identical_codings_agree_fully_where_defined() -> None:
    units = [
        Unit("r1", ["rapport"], ["rapport"]),
        Unit("r2", ["rapport", "listening"], ["listening", "rapport"]),
        Unit("r3", [], []),
    ]
    body = agreement(
        ["rapport", "listening", "time"], units, question="q", coders=CODERS
    ).model_dump()
    kappas = {c["id"]: c["kappa"] for c in body["categories"]}
    # rapport 2 of 3 by both, listening 1 of 3 by both: kappa 1; time unused: p_e = 1.
    assert kappas == {"rapport": 1.0, "listening": 1.0, "time": None}
    assert {c["percent_agreement"] for c in body["categories"]} == {100.0}
    # 9 pairs, 3 + 3 ones and 12 zeros, none differing: alpha = 1 - 0 = 1.
    assert body["overall"] == {
        "percent_agreement": 100.0,
        "mean_kappa": 1.0,
        "krippendorff_alpha": 1.0,
    }


def test_no_variation_at_all_leaves_kappa_and_alpha_undefined() -> None:
    # Every answer coded "codable, no category" by both: every value is 0, so p_e = 1 for
    # every category and alpha's expected disagreement (2 n_0 n_1) is 0.
    units = [Unit(f"r{i}", [], []) for i in range(5)]
    body = agreement(["rapport", "listening"], units, question="q", coders=CODERS).model_dump()
    assert [c["kappa"] for c in body["categories"]] == [None, None]
    assert [c["percent_agreement"] for c in body["categories"]] == [100.0, 100.0]
    assert body["overall"] == {
        "percent_agreement": 100.0,
        "mean_kappa": None,
        "krippendorff_alpha": None,
    }
    # and the package refuses such data too
    with pytest.raises(ValueError, match="more than one value"):
        krippendorff.alpha(reliability_data=[[0] * 10, [0] * 10], level_of_measurement="nominal")


def test_a_codebook_without_categories_has_no_alpha() -> None:
    units = [Unit("r1", [], []), Unit("r2", [], [])]
    body = agreement([], units, question="q", coders=CODERS).model_dump()
    assert body["categories"] == []
    assert body["overall"]["percent_agreement"] == 100.0
    assert body["overall"]["krippendorff_alpha"] is None


def test_total_disagreement_on_one_unit() -> None:
    # One unit, one category, A present, B absent: p_o = 0, p_e = (1*0 + 0*1)/1 = 0, kappa 0.
    # alpha: n = 2, o[0,1] = o[1,0] = 1, n_0 = n_1 = 1: 1 - 1*2/(2*1*1) = 0.
    body = agreement(["rapport"], [Unit("r1", ["rapport"], [])], question="q", coders=CODERS)
    assert body.categories[0].kappa == 0.0
    assert body.categories[0].percent_agreement == 0.0
    assert body.overall.percent_agreement == 0.0
    assert body.overall.krippendorff_alpha == 0.0
    assert krippendorff.alpha(reliability_data=[[1], [0]], level_of_measurement="nominal") == 0.0


def test_nominal_alpha_worked_by_hand_with_three_coders_and_a_gap() -> None:
    # Units (values of the coders who gave one): [a, a, b], [b, b], [a] (unpairable).
    # Unit 1 (m = 3): ordered pairs a-a 2, a-b 2, b-a 2, each / (m - 1) = 2:
    #   o[a,a] += 1, o[a,b] += 1, o[b,a] += 1.  Unit 2 (m = 2): o[b,b] += 2.
    # n_a = 2, n_b = 3, n = 5; alpha = 1 - (n - 1)(o[a,b] + o[b,a]) / (2 n_a n_b)
    #   = 1 - 4*2/12 = 1/3.
    units = [["a", "a", "b"], ["b", "b"], ["a"]]
    assert nominal_alpha(units) == Fraction(1, 3)
    data = np.array([[1, 2, 1], [1, 2, np.nan], [2, np.nan, np.nan]])  # coders x units
    assert krippendorff.alpha(reliability_data=data, level_of_measurement="nominal") == (
        pytest.approx(1 / 3)
    )
    assert nominal_alpha([["a"], ["b"]]) is None  # nothing pairable
    assert nominal_alpha([]) is None


def _random_units(rng: random.Random, categories: list[str], n: int) -> list[Unit]:
    """Two coders who mostly agree, each category with its own frequency."""
    weights = {c: rng.random() * 0.6 for c in categories}
    units = []
    for i in range(n):
        a = {c for c in categories if rng.random() < weights[c]}
        b = set(a)
        for c in categories:
            if rng.random() < 0.15:
                b ^= {c}
        units.append(Unit(f"r{i}", sorted(a), sorted(b)))
    return units


def _reference_kappa(x: "np.ndarray", y: "np.ndarray") -> float | None:
    """Cohen's kappa from its textbook definition, over two 0/1 vectors, in floats."""
    p_o = float(np.mean(x == y))
    p_e = float(np.mean(x) * np.mean(y) + np.mean(1 - x) * np.mean(1 - y))
    if p_e == 1:
        return None
    return (p_o - p_e) / (1 - p_e)


@pytest.mark.parametrize("seed", range(40))
def test_random_data_against_reference_formulas_and_krippendorff(seed: int) -> None:
    rng = random.Random(seed)
    categories = [f"c{i}" for i in range(rng.randint(1, 8))]
    units = _random_units(rng, categories, rng.randint(1, 60))
    body = agreement(categories, units, question="q", coders=CODERS)

    a = np.array([[int(c in u.a) for c in categories] for u in units])
    b = np.array([[int(c in u.b) for c in categories] for u in units])
    kappas = []
    for j, row in enumerate(body.categories):
        assert (row.a_count, row.b_count, row.both) == (
            int(a[:, j].sum()),
            int(b[:, j].sum()),
            int((a[:, j] & b[:, j]).sum()),
        )
        assert row.percent_agreement == pytest.approx(
            100 * float(np.mean(a[:, j] == b[:, j])), abs=0.05
        )
        expected = _reference_kappa(a[:, j], b[:, j])
        if expected is None:
            assert row.kappa is None
        else:
            kappas.append(expected)
            assert row.kappa == pytest.approx(expected, abs=0.0005 + 1e-12)
    if kappas:
        assert body.overall.mean_kappa == pytest.approx(float(np.mean(kappas)), abs=0.0005 + 1e-12)
    else:
        assert body.overall.mean_kappa is None
    identical = sum(set(u.a) == set(u.b) for u in units)
    assert body.overall.percent_agreement == pytest.approx(100 * identical / len(units), abs=0.05)

    data = np.array([a.ravel(), b.ravel()])
    if len(np.unique(data)) < 2:
        assert body.overall.krippendorff_alpha is None
    else:
        expected_alpha = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
        assert body.overall.krippendorff_alpha == pytest.approx(expected_alpha, abs=0.0005 + 1e-12)
        # and the exact value, before rounding, agrees to float precision
        pairs = [[int(x), int(y)] for x, y in zip(a.ravel(), b.ravel(), strict=True)]
        exact = nominal_alpha(pairs)
        assert exact is not None
        assert float(exact) == pytest.approx(expected_alpha, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_nominal_alpha_with_many_coders_and_gaps_against_krippendorff(seed: int) -> None:
    rng = random.Random(1000 + seed)
    n_coders, n_units = rng.randint(2, 5), rng.randint(2, 40)
    values = list(range(rng.randint(2, 4)))
    data = [
        [rng.choice(values) if rng.random() < 0.8 else None for _ in range(n_units)]
        for _ in range(n_coders)
    ]
    units = [[row[u] for row in data if row[u] is not None] for u in range(n_units)]
    ours = nominal_alpha(units)
    matrix = np.array([[np.nan if v is None else v for v in row] for row in data], dtype=float)
    pairable = [v for unit in units if len(unit) >= 2 for v in unit]
    if len(set(pairable)) < 2:
        assert ours is None
        return
    expected = krippendorff.alpha(
        reliability_data=matrix, level_of_measurement="nominal", value_domain=values
    )
    assert ours is not None
    assert float(ours) == pytest.approx(expected, rel=1e-9, abs=1e-12)
