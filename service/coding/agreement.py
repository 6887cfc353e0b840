"""Agreement between two coders (contract §6), computed exactly.

Every figure is a ratio of integers, so it is computed with `Fraction`s and rounded once,
half-up, at the end: a float kappa of exactly 0.0625 would otherwise round to 0.062 (ties
to even) where the contract asks for 0.063, and the mean of the kappas is taken over the
exact values, not over rounded ones. Ties of negative values round away from zero
(-0.3125 → -0.313), as `decimal.ROUND_HALF_UP` does.
"""

from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from fractions import Fraction
from typing import NamedTuple

from schemas.agreement import AgreementPublic, CategoryAgreement, OverallAgreement
from service.stats.numbers import half_up, percent

KAPPA_PLACES = 3


class Unit(NamedTuple):
    """One answer both coders coded, with each coder's set of categories."""

    response_id: str
    a: Collection[str]
    b: Collection[str]


def cohen_kappa(*, n: int, a: int, b: int, both: int) -> Fraction | None:
    """Cohen's kappa of one category's presence over `n` units, where coder A gave it `a`
    times, coder B `b` times, and both together `both` times; None where p_e = 1 (both
    coders constant and alike: nothing for chance to explain) or there are no units.

    With p_o = agree/n and p_e = (a·b + (n-a)(n-b))/n², (p_o - p_e)/(1 - p_e) is
    (n·agree - E)/(n² - E) with E = a·b + (n-a)(n-b), all integers.
    """
    agree = n - a - b + 2 * both
    expected = a * b + (n - a) * (n - b)
    denominator = n * n - expected
    if n == 0 or denominator == 0:
        return None
    return Fraction(n * agree - expected, denominator)


def alpha_from_coincidences(
    coincidences: Mapping[tuple[Hashable, Hashable], Fraction],
) -> Fraction | None:
    """Krippendorff's nominal alpha from the coincidence matrix o[c, k]:
    1 - (n - 1)·Σ_{c≠k} o[c,k] / Σ_{c≠k} n_c·n_k, with n_c the matrix's row sums and n
    their total. None where undefined: no pairable values, or only one value in use (no
    variation for disagreement to be measured against)."""
    totals: defaultdict[Hashable, Fraction] = defaultdict(Fraction)
    observed = Fraction(0)
    for (c, k), count in coincidences.items():
        totals[c] += count
        if c != k:
            observed += count
    n = sum(totals.values(), Fraction(0))
    expected = n * n - sum((t * t for t in totals.values()), Fraction(0))  # Σ_{c≠k} n_c·n_k
    if n == 0 or expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def nominal_alpha(units: Iterable[Sequence[Hashable]]) -> Fraction | None:
    """Krippendorff's nominal alpha over units each holding the values its coders gave
    (any number of coders, missing values left out); units with fewer than two values are
    not pairable and do not count."""
    coincidences: defaultdict[tuple[Hashable, Hashable], Fraction] = defaultdict(Fraction)
    for values in units:
        m = len(values)
        if m < 2:
            continue
        counts = Counter(values)
        for c, nc in counts.items():
            for k, nk in counts.items():
                pairs = nc * (nk - 1) if c == k else nc * nk
                coincidences[(c, k)] += Fraction(pairs, m - 1)
    return alpha_from_coincidences(coincidences)


def presence_alpha(n_units: int, counts: Iterable[tuple[int, int, int]]) -> Fraction | None:
    """Nominal alpha over the presence values (1/0) of two coders for every unit x category,
    from each category's (a_count, b_count, both) alone: a unit x category pair where the
    coders agree adds 2 to o[v, v], one where they differ adds 1 to o[0, 1] and to o[1, 0]."""
    present = absent = differ = 0
    for a, b, both in counts:
        present += both
        differ += a + b - 2 * both
        absent += n_units - a - b + both
    return alpha_from_coincidences(
        {
            (1, 1): Fraction(2 * present),
            (0, 0): Fraction(2 * absent),
            (0, 1): Fraction(differ),
            (1, 0): Fraction(differ),
        }
    )


def agreement(
    categories: Sequence[str], units: Sequence[Unit], *, question: str, coders: tuple[str, str]
) -> AgreementPublic:
    """The agreement body of contract §6 over `units`, per codebook category in order."""
    n = len(units)
    a_counts: Counter[str] = Counter()
    b_counts: Counter[str] = Counter()
    both_counts: Counter[str] = Counter()
    identical = 0
    for unit in units:
        set_a, set_b = set(unit.a), set(unit.b)
        identical += set_a == set_b
        a_counts.update(set_a)
        b_counts.update(set_b)
        both_counts.update(set_a & set_b)
    rows: list[CategoryAgreement] = []
    kappas: list[Fraction] = []
    for category in categories:
        a, b, both = a_counts[category], b_counts[category], both_counts[category]
        kappa = cohen_kappa(n=n, a=a, b=b, both=both)
        if kappa is not None:
            kappas.append(kappa)
        rows.append(
            CategoryAgreement(
                id=category,
                a_count=a,
                b_count=b,
                both=both,
                percent_agreement=percent(n - a - b + 2 * both, n),
                kappa=None if kappa is None else half_up(kappa, KAPPA_PLACES),
            )
        )
    alpha = presence_alpha(n, ((r.a_count, r.b_count, r.both) for r in rows))
    mean_kappa = sum(kappas, Fraction(0)) / len(kappas) if kappas else None
    return AgreementPublic(
        question=question,
        coders=list(coders),
        n_units=n,
        categories=rows,
        overall=OverallAgreement(
            percent_agreement=percent(identical, n),
            mean_kappa=None if mean_kappa is None else half_up(mean_kappa, KAPPA_PLACES),
            krippendorff_alpha=None if alpha is None else half_up(alpha, KAPPA_PLACES),
        ),
    )
