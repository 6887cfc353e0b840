"""Suppression (contract §7.5) on thousands of random grouped tables, without HTTP: it
never fails, a grouped body shows the whole scope as the plain body does, and an
attacker holding what is shown and the true relations between the cells (its own,
not the grids') works out no count from 1 to K-1."""

import random
from collections.abc import Hashable, Sequence

import pytest

from schemas.codebooks import ThemeIn
from schemas.surveys import ChoiceQuestion, MultiChoiceQuestion
from service.stats import tables, themes
from service.stats.query import levels
from service.stats.suppression import Grid
from service.stats.tally import TOP

Relation = tuple[Hashable, list[Hashable]]
OPTIONS = [{"value": v, "label": v.upper()} for v in ("a", "b", "c", "d")]
CHOICE = ChoiceQuestion(id="role", type="choice", text="Role", options=OPTIONS)
MULTI = MultiChoiceQuestion(id="agencies", type="multi_choice", text="Agencies", options=OPTIONS)
SMALL = (0, 0, 1, 2, 3, 4, 5, 6, 8, 12)
REST = "rest"  # the attacker's name for the responses in no group


def worked_out(known: dict[Hashable, int], relations: Sequence[Relation]) -> dict[Hashable, int]:
    known = dict(known)
    found: dict[Hashable, int] = {}
    changed = True
    while changed:
        changed = False
        for total, members in relations:
            unknown = [c for c in (total, *members) if c not in known]
            if len(unknown) != 1:
                continue
            (cell,) = unknown
            others = sum(known[m] for m in members if m != cell)
            value = others if cell == total else known[total] - others
            known[cell] = found[cell] = value
            changed = True
    return found


def assert_safe(
    grid: Grid, alone: Grid, relations: list[Relation], truth: dict[Hashable, int], k: int
) -> None:
    for key in alone.counts:
        assert (key in grid.hidden) == (key in alone.hidden), key
    shown = {key: grid.counts[key] for key in grid.counts if key not in grid.hidden}
    assert all(not 0 < count < k for count in shown.values())
    for cell, value in worked_out(shown, relations).items():
        assert value == truth[cell], cell
        assert not 0 < value < k, (cell, value)


def random_table(rng: random.Random, key: str, exclusive: bool) -> tables.Table:
    rows = [(level, rng.choice(SMALL)) for level in levels(CHOICE)]
    answered = sum(c for _, c in rows) if exclusive else max(c for _, c in rows) + rng.randrange(3)
    return tables.Table(key=key, n=answered, missing=rng.choice(SMALL), rows=rows)


@pytest.mark.parametrize("seed", range(4))
def test_count_tables(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(400):
        question = rng.choice([CHOICE, MULTI])
        exclusive = question is CHOICE
        complete = rng.random() < 0.5
        groups = [random_table(rng, f"g{i}", exclusive) for i in range(rng.randrange(1, 5))]
        rest = random_table(rng, REST, exclusive) if not complete and rng.random() < 0.7 else None
        parts = groups + ([rest] if rest else [])
        top = tables.Table(
            key=TOP,
            n=sum(t.n for t in parts),
            missing=sum(t.missing for t in parts),
            rows=[
                (lv, sum(t.rows[i][1] for t in parts)) for i, (lv, _) in enumerate(groups[0].rows)
            ],
        )
        k = rng.choice([3, 5])
        grid = tables.suppressed(question, [top, *groups], k, complete=complete)
        alone = tables.suppressed(question, [top], k)
        truth: dict[Hashable, int] = {}
        relations: list[Relation] = []
        fields = [("n",), ("missing",), *[("row", lv.key) for lv, _ in top.rows]]
        for t in [top, *parts]:
            truth[(t.key, "n")] = t.n
            truth[(t.key, "missing")] = t.missing
            for lv, count in t.rows:
                truth[(t.key, "row", lv.key)] = count
            if exclusive:
                relations.append(((t.key, "n"), [(t.key, "row", lv.key) for lv, _ in t.rows]))
        keys = [g.key for g in groups] + ([] if complete else [REST])
        if not complete and rest is None:  # nobody outside the groups: zeros, and known
            for f in fields:
                truth[(REST, *f)] = 0
        for f in fields:
            relations.append(((TOP, *f), [(g, *f) for g in keys]))
        if not complete and rest is None:
            relations += [((REST, *f), []) for f in fields]
        assert_safe(grid, alone, relations, truth, k)


THEMES = [
    ThemeIn.model_validate(
        {
            "id": "a",
            "label": "A",
            "categories": [{"id": "x", "label": "X"}, {"id": "y", "label": "Y"}],
        }
    ),
    ThemeIn.model_validate({"id": "b", "label": "B", "categories": [{"id": "z", "label": "Z"}]}),
]


def random_theme_counts(rng: random.Random, key: str) -> themes.ThemeCounts:
    coded, disputed, uncoded, blank = (rng.choice(SMALL) for _ in range(4))
    answered = coded + disputed + uncoded
    n = {
        "n_responses": answered + blank,
        "n_answered": answered,
        "n_blank": blank,
        "n_coded": coded,
        "n_disputed": disputed,
        "n_uncoded": uncoded,
    }
    values = {f"c:{c}": rng.randrange(coded + 1) for c in ("x", "y", "z")}
    values["t:a"] = max(values["c:x"], values["c:y"])
    values["t:b"] = values["c:z"]
    return themes.ThemeCounts(key=key, n=n, values=values)


@pytest.mark.parametrize("seed", range(4))
def test_theme_tables(seed: int) -> None:
    rng = random.Random(seed)
    fields = [(f,) for f in themes.N_FIELDS] + [(v,) for v in ("t:a", "c:x", "c:y", "t:b", "c:z")]
    for _ in range(250):
        complete = rng.random() < 0.5
        groups = [random_theme_counts(rng, f"g{i}") for i in range(rng.randrange(1, 4))]
        rest = random_theme_counts(rng, REST) if not complete and rng.random() < 0.7 else None
        parts = groups + ([rest] if rest else [])
        top = themes.ThemeCounts(
            key=TOP,
            n={f: sum(p.n[f] for p in parts) for f in themes.N_FIELDS},
            values={v: sum(p.values[v] for p in parts) for v in parts[0].values},
        )
        k = rng.choice([3, 5])
        grid = themes._grid([top, *groups], THEMES, k, complete=complete)
        alone = themes._grid([top], THEMES, k)
        truth: dict[Hashable, int] = {}
        relations: list[Relation] = []
        for t in [top, *parts]:
            truth.update({(t.key, f): c for f, c in t.n.items()})
            truth.update({(t.key, v): c for v, c in t.values.items()})
            relations.append(((t.key, "n_responses"), [(t.key, "n_answered"), (t.key, "n_blank")]))
            relations.append(
                (
                    (t.key, "n_answered"),
                    [(t.key, f) for f in ("n_coded", "n_disputed", "n_uncoded")],
                )
            )
        keys = [g.key for g in groups] + ([] if complete else [REST])
        if not complete and rest is None:
            for f in fields:
                truth[(REST, *f)] = 0
            relations += [((REST, *f), []) for f in fields]
        for f in fields:
            relations.append(((TOP, *f), [(g, *f) for g in keys]))
        assert_safe(grid, alone, relations, truth, k)
