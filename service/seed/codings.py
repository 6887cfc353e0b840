"""The demo's double coding of the seed answers: two coders, a few discrepancies, each
resolved by an evaluator's consensus, so that the effective sets are exactly the Table 3
categories of every answer while agreement between the coders stays realistic (below 100%).

Coder A codes every answer as the seed says. Coder B agrees except on a dozen answers, where
it misses one of several categories, confuses a category with its neighbour in the same
theme, or adds a neighbour; the evaluator's consensus then restores the seed's set.
Deterministic: a private ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from service.seed.dataset import SeedResponse, load_codebook

CODER_A: Final = "coder-a"
CODER_B: Final = "coder-b"
EVALUATOR: Final = "demo-evaluator"
N_DISCREPANCIES: Final = 12
SEED: Final = 2016
KINDS: Final = ("missed", "confused", "extra")


@dataclass(frozen=True)
class SeedCoding:
    """How both coders (and, where they differ, the evaluator) code one seed answer."""

    index: int  # position in `generate_responses()`
    a: tuple[str, ...]
    b: tuple[str, ...]
    consensus: tuple[str, ...] | None


def _neighbours() -> dict[str, list[str]]:
    """Each category's neighbours in codebook order within its theme: the categories a
    coder most plausibly confuses it with."""
    neighbours: dict[str, list[str]] = {}
    for theme in load_codebook()["themes"]:
        ids = [c["id"] for c in theme["categories"]]
        for i, category in enumerate(ids):
            neighbours[category] = [ids[j] for j in (i - 1, i + 1) if 0 <= j < len(ids)]
    return neighbours


def _differ(
    rng: random.Random, kind: str, chosen: tuple[str, ...], near: dict[str, list[str]]
) -> tuple[str, ...]:
    """Coder B's set for an answer it codes differently from `chosen`."""
    options = [(c, n) for c in chosen for n in near[c] if n not in chosen]
    if (kind == "missed" and len(chosen) >= 2) or not options:
        # no options: every neighbour of every category is already there, so 2 or more
        dropped = rng.choice(chosen)
        return tuple(c for c in chosen if c != dropped)
    category, neighbour = rng.choice(options)
    if kind == "extra":
        return (*chosen, neighbour)
    return tuple(neighbour if c == category else c for c in chosen)


def seed_codings(responses: Sequence[SeedResponse]) -> list[SeedCoding]:
    """The codings of every answered seed response, in the responses' order."""
    rng = random.Random(SEED)
    near = _neighbours()
    answered = [i for i, r in enumerate(responses) if r.categories]
    disputed = sorted(rng.sample(answered, N_DISCREPANCIES))
    kinds = {i: KINDS[k % len(KINDS)] for k, i in enumerate(disputed)}
    codings = []
    for i in answered:
        chosen = responses[i].categories
        if i in kinds:
            other = _differ(rng, kinds[i], chosen, near)
            codings.append(SeedCoding(i, chosen, other, chosen))
        else:
            codings.append(SeedCoding(i, chosen, chosen, None))
    return codings
