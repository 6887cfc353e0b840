"""Published figures are rounded half-up from exact integers (contract §1, §7.2, §7.4),
never from a float whose binary expansion falls the other side of a half."""

from fractions import Fraction

import pytest

from service.stats.numbers import half_up, percent, share


@pytest.mark.parametrize(
    ("count", "base", "expected"),
    [
        (5, 68, 7.4),  # 7.35294...
        (23, 102, 22.5),  # 22.549...
        (46, 204, 22.5),  # the paper's Table 1
        (15, 204, 7.4),
        (17, 204, 8.3),
        (1, 3, 33.3),
        (2, 3, 66.7),
        (1, 8, 12.5),
        (1, 16, 6.3),  # 6.25: an exact half, up
        (1, 80, 1.3),  # 1.25
        (3, 80, 3.8),  # 3.75
        (1, 40, 2.5),
        (0, 7, 0.0),
        (7, 7, 100.0),
        (1, 2000, 0.1),  # 0.05
        (1, 2001, 0.0),  # 0.04997...
    ],
)
def test_percent_is_half_up_to_one_decimal(count: int, base: int, expected: float) -> None:
    assert percent(count, base) == expected


def test_percent_of_an_empty_base_is_none() -> None:
    assert percent(0, 0) is None


def test_share_is_exact() -> None:
    assert share(5, 68) == Fraction(500, 68)
    assert share(0, 3) == 0


@pytest.mark.parametrize(
    ("value", "places", "expected"),
    [
        (Fraction(1, 8), 2, 0.13),  # 0.125: round() gives 0.12
        (Fraction(1, 40) * 100, 1, 2.5),
        (Fraction(5, 2), 0, 3.0),  # round() gives 2
        (Fraction(7, 2), 0, 4.0),
        (Fraction(17, 8), 2, 2.13),
        (Fraction(1, 3), 2, 0.33),
        (Fraction(2, 3), 2, 0.67),
        (Fraction(1005, 1000), 2, 1.01),  # 1.005 as a float is 1.00499...
        (Fraction(0), 1, 0.0),
        # negative differences round half away from zero, symmetric with positive ones
        (Fraction(-1, 8), 2, -0.13),
        (Fraction(-5, 2), 0, -3.0),
        (Fraction(-1005, 1000), 2, -1.01),
        (Fraction(-1, 3), 2, -0.33),
        (Fraction(-1, 1000), 2, 0.0),
    ],
)
def test_half_up(value: Fraction, places: int, expected: float) -> None:
    assert half_up(value, places) == expected


def test_half_up_returns_the_nearest_float_of_the_rounded_decimal() -> None:
    for numerator in range(-2000, 2001):
        value = Fraction(numerator, 997)
        rounded = half_up(value, 2)
        assert abs(Fraction(rounded) - value) <= Fraction(1, 200)
        assert rounded == float(Fraction(round(rounded * 100), 100))
