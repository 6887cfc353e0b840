"""An attacker on published releases, written apart from `service/releases` (it imports
nothing of it): it knows the true respondents, as the test that made them does, reads
the releases' JSON as a reader gets it, and asks, for every suppressed count, how small
and how large it could be given everything published.

Its model is its own: every respondent is classified by its answers, its site and wave,
and the releases it was there for; respondents whom no published cell tells apart form
one atom. Anyone could also have been there for a shorter run of the releases (atoms
of size 0): the attacker learns how many arrived or left from `n_responses`, not who.
Each published count (and each release's `n_responses`) is an equation over
the atoms' sizes; `scipy.optimize.linprog` minimises and maximises each suppressed count
over the non-negative sizes that satisfy them all. A suppressed count whose range is
under 1 wide is worked out exactly: a leak.

Tables are read from their request (`site`, `wave`, `q`, `by`) and their body (rows,
groups; for theme tables the `n_*` counts, each theme's `respondents` and `mentions`
and each category's `respondents`). A theme's `respondents` counts the respondents
with any of its categories, so it is a sum over atoms like any count; its `mentions`
is the sum of its categories' counts, one more equation where it is published.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

Json = dict[str, Any]
CellKey = tuple[Any, ...]


@dataclass
class Person:
    site: str
    wave: str
    answers: Json
    present: set[str] = field(default_factory=set)  # ids of the releases it was there for
    # per coded text question: its coding status and effective categories (None if none)
    codings: dict[str, tuple[str, frozenset[str] | None]] = field(default_factory=dict)


def _group_value(person: Person, by: str) -> Any:
    if by in ("site", "wave"):
        return getattr(person, by)
    return person.answers.get(by)


def _in_scope(person: Person, table: Json) -> bool:
    if table["site"] is not None and person.site not in table["site"]:
        return False
    if table["wave"] is not None and person.wave not in table["wave"]:
        return False
    for question, values in (table["q"] or {}).items():
        if person.answers.get(question) not in values:
            return False
    return True


CODED = ("single", "agreed", "resolved")


def _own_theme_cells(person: Person, body: Json, question: str) -> Iterator[str | tuple[Any, ...]]:
    yield "n_responses"
    if person.answers.get(question) is None:
        yield "n_blank"
        return
    yield "n_answered"
    status, effective = person.codings.get(question, ("uncoded", None))
    if status not in CODED:
        yield "n_disputed" if status == "disputed" else "n_uncoded"
        return
    yield "n_coded"
    for theme in body["themes"]:
        mine = [c["id"] for c in theme["categories"] if c["id"] in (effective or ())]
        yield from (("category", theme["id"], c) for c in mine)
        if mine:
            yield ("theme", theme["id"])


def _own_cells(person: Person, body: Json, table: Json) -> Iterator[str | tuple[Any, ...]]:
    question = table["question"]
    if table["kind"] == "themes":
        yield from _own_theme_cells(person, body, question)
        return
    answer = person.answers.get(question)
    if answer is None:
        yield "missing"
        return
    yield "n"
    chosen = answer if isinstance(answer, list) else [answer]
    for r in body["rows"]:
        if r["value"] in chosen:
            yield ("row", r["value"])


def cells_of(person: Person, release: Json) -> list[CellKey]:
    """The cells of `release` that `person` counts in (none if it was not there)."""
    if release["id"] not in person.present:
        return []
    found: list[CellKey] = [(release["id"], "n_responses")]
    for table in release["tables"]:
        if not _in_scope(person, table):
            continue
        place = (release["id"], table["id"])
        found += [(*place, None, c) for c in _own_cells(person, table, table)]
        if table["by"] is not None:
            value = _group_value(person, table["by"])
            for group in table["groups"]:
                if group["value"] == value:
                    found += [(*place, value, c) for c in _own_cells(person, group, table)]
    return found


def published(release: Json) -> Iterator[tuple[CellKey, int | None]]:
    """Every count cell of the release with what it shows (None where suppressed)."""
    yield (release["id"], "n_responses"), release["n_responses"]
    for table in release["tables"]:
        place = (release["id"], table["id"])
        bodies = [(None, table)] + [(g["value"], g) for g in table.get("groups") or ()]
        for value, body in bodies:
            if table["kind"] == "themes":
                for name in THEME_COUNTS:
                    yield (*place, value, name), body[name]
                for theme in body["themes"]:
                    yield (*place, value, ("theme", theme["id"])), theme["respondents"]
                    for c in theme["categories"]:
                        key = ("category", theme["id"], c["id"])
                        yield (*place, value, key), c["respondents"]
                continue
            yield (*place, value, "n"), body["n"]
            yield (*place, value, "missing"), body["missing"]
            for r in body["rows"]:
                yield (*place, value, ("row", r["value"])), r["count"]


THEME_COUNTS = ("n_responses", "n_answered", "n_blank", "n_coded", "n_disputed", "n_uncoded")


def mentions(release: Json) -> Iterator[tuple[CellKey, list[CellKey], int | None]]:
    """Each theme's `mentions` as published, with the category cells it sums."""
    for table in release["tables"]:
        if table["kind"] != "themes":
            continue
        place = (release["id"], table["id"])
        bodies = [(None, table)] + [(g["value"], g) for g in table.get("groups") or ()]
        for value, body in bodies:
            for theme in body["themes"]:
                parts = [
                    (*place, value, ("category", theme["id"], c["id"])) for c in theme["categories"]
                ]
                yield (*place, value, ("mentions", theme["id"])), parts, theme["mentions"]


@dataclass
class Finding:
    cell: CellKey
    truth: int
    low: float
    high: float


@dataclass
class Attack:
    leaks: list[Finding]
    suppressed: int  # suppressed cells of a true count above zero
    large: int  # cells of a true count of at least K
    large_published: int


def attack(releases: Sequence[Json], people: Sequence[Person], k: int) -> Attack:
    atoms: dict[frozenset[CellKey], int] = {}
    runs = {frozenset(p.present) for p in people}  # who arrived or left is not known, but
    for p in people:  # that someone did (between which releases) is
        m = frozenset(c for r in releases for c in cells_of(p, r))
        atoms[m] = atoms.get(m, 0) + 1
        # the attacker does not know who arrived or left, only how many: anyone may
        # have been there for a shorter run of the releases (an atom of size 0)
        there = [i for i, r in enumerate(releases) if r["id"] in p.present]
        for a in range(len(there)):
            for b in range(a, len(there)):
                run = {releases[i]["id"] for i in there[a : b + 1]}
                if run != p.present and run in runs:
                    like = Person(p.site, p.wave, p.answers, run, p.codings)
                    atoms.setdefault(frozenset(c for r in releases for c in cells_of(like, r)), 0)
    columns = list(atoms)
    sizes = np.array([atoms[c] for c in columns], dtype=float)
    shown = dict(kv for r in releases for kv in published(r))
    index = {cell: i for i, cell in enumerate(shown)}
    _cells = list(index)
    rows, cols = [], []
    for a, cells in enumerate(columns):
        for cell in cells:
            assert cell in index, f"the attacker's model misses cell {cell}"
            rows.append(index[cell])
            cols.append(a)
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(index), len(columns)))
    # a published `mentions` is one more equation: the sum of its categories' rows
    sums = [(cell, parts, value) for r in releases for cell, parts, value in mentions(r)]
    if sums:
        extra = sparse.vstack(
            [
                sparse.csr_matrix(matrix[[index[c] for c in parts]].sum(axis=0))
                for _, parts, _ in sums
            ]
        )
        matrix = sparse.vstack([matrix, extra], format="csr")
        for cell, _, value in sums:
            index[cell] = len(index)
            shown[cell] = value
            _cells.append(cell)
    truth = matrix @ sizes
    known = [i for cell, i in index.items() if shown[cell] is not None]
    for cell, i in index.items():  # the published figures are the true ones
        if shown[cell] is not None:
            assert shown[cell] == round(truth[i]), (cell, shown[cell], truth[i])
    # what was public before the last release: its own cells aside, everything
    last = releases[-1]["id"]
    before = [i for i in known if _cells[i][0] != last or _cells[i][1] == "n_responses"]
    leaks: list[Finding] = []
    suppressed = large = large_published = 0

    def bounds(objective: np.ndarray[Any, Any], rows: list[int]) -> tuple[float, float]:
        found = []
        for sign in (1, -1):
            result = linprog(
                sign * objective,
                A_eq=matrix[rows],
                b_eq=truth[rows],
                bounds=(0, None),
                method="highs",
            )
            assert result.status == 0, result.message
            found.append(sign * result.fun)
        return found[0], found[1]

    def probe(cell: CellKey, objective: np.ndarray[Any, Any]) -> None:
        low, high = bounds(objective, known)
        if high - low >= 1 - 1e-6:
            return
        earlier_low, earlier_high = bounds(objective, before)
        if earlier_high - earlier_low < 1 - 1e-6:
            return  # public before the last release: no release can take it back
        leaks.append(Finding(cell, round(float(objective @ sizes)), low, high))

    derived = {cell for cell, _, _ in sums}  # not counts: probed through their parts
    for cell, i in index.items():
        if cell in derived:
            continue
        if truth[i] >= k:
            large += 1
            large_published += shown[cell] is not None
        if shown[cell] is not None or truth[i] == 0:
            continue
        suppressed += 1
        probe(cell, matrix[i].toarray().ravel())
    # the same table read at two releases: who came into a cell, or left it, between them
    for earlier, again in repeated(releases):
        for cell, i in index.items():
            if cell[:2] != (earlier["id"], earlier["id_of_table"]) or cell in derived:
                continue
            later = index.get((again["id"], again["id_of_table"], *cell[2:]))
            if later is None:
                continue
            delta = (matrix[later] - matrix[i]).toarray().ravel()
            for part in (delta > 0, delta < 0):
                moved = part.astype(float)
                if 0 < moved @ sizes < k:
                    probe(("moved", *cell), moved)
    return Attack(leaks, suppressed, large, large_published)


REQUEST = ("kind", "question", "by", "site", "wave", "q")


def repeated(releases: Sequence[Json]) -> Iterator[tuple[Json, Json]]:
    """Pairs of the same table (by its request) in two releases, earlier first."""
    for i, first in enumerate(releases):
        for second in releases[i + 1 :]:
            for a in first["tables"]:
                for b in second["tables"]:
                    if all(a[f] == b[f] for f in REQUEST):
                        yield (
                            {"id": first["id"], "id_of_table": a["id"]},
                            {"id": second["id"], "id_of_table": b["id"]},
                        )
