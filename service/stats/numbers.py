"""Exact rounding for published figures (contract §1): half-up from exact fractions.

Floats are never rounded here: 7.35294… must become 7.4 and 22.549… 22.5 whatever
the binary expansion of the quotient, so every figure starts as a `Fraction` of
integers and is rounded once, half away from zero, at the end.
"""

from fractions import Fraction


def half_up(value: Fraction, places: int) -> float:
    scale = 10**places
    magnitude = (abs(value) * scale + Fraction(1, 2)).__floor__()
    rounded = Fraction(magnitude, scale)
    return float(-rounded if value < 0 else rounded)


def share(count: int, base: int) -> Fraction:
    """count / base x 100, exactly."""
    return Fraction(count * 100, base)


def percent(count: int, base: int) -> float | None:
    """The contract's percentage, or None where the base is empty."""
    return half_up(share(count, base), 1) if base else None
