"""An attacker on suppressed statistics (contract §7.5): it pools every cell a reader was
shown, across bodies and groupings, and solves every relation the contract implies that
is left with one unknown, again and again, as someone with a spreadsheet would.

A cell is one count over a slice of the responses: a question, a scope (site, wave and
the answer to one other question, each or none) and a field (`n`, `missing`, a row's
value; the `n_*`, themes and categories of a theme table). The same cell shown in two
bodies (the whole scope of a `by=site` body and of a plain one, a `by=role` group and
the whole scope filtered on that role) is one unknown.

The relations: the rows of an exclusive table add up to its `n` (the `n_*` counts of a
theme table add up as §7.3 says); and every cell of a scope is the sum of that cell over
the sites, over the waves, and over the answers to another question, "no answer"
included (that slice is in no body, so it is a cell the attacker never sees).
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from tests.api.stats_support import LEVELS, MULTI, SITES, WAVES, Json, Params, Row

Condition = tuple[str, Any] | None  # (question, its value; None: did not answer it)
Scope = tuple[str | None, str | None, Condition]  # site, wave, condition; None: any
Field = tuple[Any, ...]
Var = tuple[str, Scope, Field]  # (question, scope, field)
Relation = tuple[Var, tuple[Var, ...]]  # a total and the cells that add up to it
Cells = Callable[[Json], Iterator[tuple[Field, int | None]]]

CONDITIONS = ("role", "involved", "trust_confidence")  # the questions bodies group on
THEME_N = ("n_responses", "n_answered", "n_blank", "n_coded", "n_disputed", "n_uncoded")


def scope_of(params: Params, by: str | None = None, group: Any = None) -> Scope:
    site = next((v for k, v in params if k == "site"), None)
    wave = next((v for k, v in params if k == "wave"), None)
    condition: Condition = None
    if by == "site":
        site = group
    elif by == "wave":
        wave = group
    elif by is not None:
        condition = (by, group)
    return site, wave, condition


def members(rows: Iterable[Row], scope: Scope) -> list[Row]:
    site, wave, condition = scope
    return [
        r
        for r in rows
        if (site is None or r.site == site)
        and (wave is None or r.wave == wave)
        and (condition is None or same(r.value(condition[0]), condition[1]))
    ]


def same(a: Any, b: Any) -> bool:
    """Equal answers, where True is not 1."""
    return type(a) is type(b) and a == b


def count_truth(rows: Sequence[Row]) -> Callable[[Var], int]:
    """The true value of a §7.1 cell, from the submitted rows."""

    def truth(var: Var) -> int:
        question, scope, field = var
        given = [r.value(question) for r in members(rows, scope)]
        if field == ("n",):
            return sum(v is not None for v in given)
        if field == ("missing",):
            return sum(v is None for v in given)
        if question in MULTI:
            return sum(v is not None and field[1] in v for v in given)
        return sum(same(v, field[1]) for v in given)

    return truth


def count_cells(table: Json) -> Iterator[tuple[Field, int | None]]:
    """The cells of a §7.1/§7.2 table."""
    yield ("n",), table["n"]
    yield ("missing",), table["missing"]
    for r in table["rows"]:
        yield ("row", r["value"]), r["count"]


def theme_cells(table: Json) -> Iterator[tuple[Field, int | None]]:
    """The cells of a §7.3 table (`mentions` is a sum of published cells: no news)."""
    for name in THEME_N:
        yield (name,), table[name]
    for theme in table["themes"]:
        yield ("t", theme["id"]), theme["respondents"]
        for category in theme["categories"]:
            yield ("c", category["id"]), category["respondents"]


def shown(question: str, params: Params, body: Json, cells: Cells) -> Iterator[tuple[Var, Any]]:
    """Every cell of a body with what the reader was shown (None where suppressed)."""
    by = body.get("by")
    tables = [(scope_of(params), body)]
    tables += [(scope_of(params, by, g["value"]), g) for g in body.get("groups") or []]
    for scope, table in tables:
        for field, value in cells(table):
            yield (question, scope, field), value


def scopes() -> Iterator[Scope]:
    for site in (None, *SITES):
        for wave in (None, *WAVES):
            yield site, wave, None
            for question in CONDITIONS:
                for value in (*LEVELS[question], None):
                    yield site, wave, (question, value)


def partitions(question: str, fields: Sequence[Field]) -> list[Relation]:
    """Each cell of a scope is the sum of that cell over the sites, the waves, and the
    answers (and non-answer) to each grouping question."""
    relations: list[Relation] = []
    for scope in scopes():
        site, wave, condition = scope
        parts: list[list[Scope]] = []
        if site is None:
            parts.append([(s, wave, condition) for s in SITES])
        if wave is None:
            parts.append([(site, w, condition) for w in WAVES])
        if condition is None:
            parts += [[(site, wave, (c, v)) for v in (*LEVELS[c], None)] for c in CONDITIONS]
        for members in parts:
            for field in fields:
                relations.append(
                    ((question, scope, field), tuple((question, m, field) for m in members))
                )
    return relations


def count_relations(question: str) -> list[Relation]:
    """§7.1: a multi-choice table has no relation among its rows."""
    rows = [("row", v) for v in LEVELS[question]]
    relations = partitions(question, [("n",), ("missing",), *rows])
    if question not in MULTI:
        relations += [
            ((question, scope, ("n",)), tuple((question, scope, r) for r in rows))
            for scope in scopes()
        ]
    return relations


def theme_relations(question: str, themes: dict[str, list[str]]) -> list[Relation]:
    """§7.3: n_responses = n_answered + n_blank = n_coded + n_disputed + n_uncoded + n_blank."""
    fields: list[Field] = [(name,) for name in THEME_N]
    for theme, categories in themes.items():
        fields += [("t", theme), *[("c", c) for c in categories]]
    relations = partitions(question, fields)
    for scope in scopes():

        def var(name: str, scope: Scope = scope) -> Var:
            return (question, scope, (name,))

        relations.append((var("n_responses"), (var("n_answered"), var("n_blank"))))
        relations.append((var("n_answered"), (var("n_coded"), var("n_disputed"), var("n_uncoded"))))
    return relations


def solve(known: dict[Var, int], relations: Iterable[Relation]) -> dict[Var, int]:
    """Everything the relations give away from `known`: a worklist to the fixed point."""
    known = dict(known)
    worked_out: dict[Var, int] = {}
    equations = [(total, members) for total, members in relations]
    holding: dict[Var, list[int]] = defaultdict(list)
    for i, (total, members) in enumerate(equations):
        for var in (total, *members):
            holding[var].append(i)
    pending = list(range(len(equations)))
    while pending:
        total, members = equations[pending.pop()]
        unknown = [v for v in (total, *members) if v not in known]
        if len(unknown) != 1:
            continue
        (var,) = unknown
        if var == total:
            value = sum(known[m] for m in members)
        else:
            value = known[total] - sum(known[m] for m in members if m != var)
        known[var] = worked_out[var] = value
        pending += holding[var]
    return worked_out


def attack(
    truth: Callable[[Var], int],
    bodies: Sequence[tuple[str, Params, Json]],
    relations: Iterable[Relation],
    *,
    cells: Cells = count_cells,
) -> dict[Var, int]:
    """The cells the attacker works out whose true count is from 1 to K-1 and which no
    body published. Every published cell and every worked-out one is checked against
    `truth`: a relation that does not hold is a bug of the test."""
    known: dict[Var, int] = {}
    for question, params, body in bodies:
        for var, value in shown(question, params, body, cells):
            if value is not None:
                assert value == truth(var), (var, value, params)
                known[var] = value
    k = bodies[0][2]["min_cell"]
    leaks = {}
    for var, value in solve(known, relations).items():
        assert value == truth(var), (var, value)
        if 0 < value < k:
            leaks[var] = value
    return leaks
