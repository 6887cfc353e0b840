"""The disclosure audit of a release (contract §7.6): no suppressed count can be worked
out exactly from everything readers have seen.

The attacker is modelled as statistical agencies model it. Every published count is a
linear equation over the counts of the respondents' cross-classification: an *atom* is
a set of respondents that no table tells apart, over every dimension any table of the
survey's releases uses (site, wave, each question counted, grouped by or filtered on,
and, for theme tables, the coding status and each category's presence), together with
the *epoch*: at which releases' publication moments the respondent was there, and with
which profile. A table published at two moments is thus two sums over overlapping sets
of atoms, and a respondent who arrived between them, or was erased between them, or
whose coding changed, sits in atoms of its own. Each release's n_responses is one more
equation.

For each suppressed cell with a true count above zero (the *targets*), linear
programming (`scipy.optimize.linprog`, HiGHS) finds the smallest and largest value it
could take over the non-negative atom counts that satisfy every published equation.
A target is protected when that range is at least 1 wide. While some target is not,
the audit suppresses one more cell of the new release: among the published equations
that bind it (non-zero duals of its min or max solve), the one of the smallest count
(it loses least information); failing that, the smallest one that shares respondents
with it; and audits again. Earlier releases' published cells, withdrawn releases'
included (what was seen cannot be unseen), are fixed equations; only the new release's
cells are ever suppressed. Suppressing only removes equations, so a target once
protected stays protected, and only the failing ones are solved again.

Choices, and why they are sound:

- The variables are the atoms that are non-empty in the true data, each also over
  every shorter run of the publications it spans that some respondent really had
  (someone with the same answers who arrived later or was erased sooner, of true
  count 0; whether anyone arrived or left between two releases is thus taken as
  known, who it was is not). A real attacker does not know
  which combinations exist; handing it that knowledge can only narrow the ranges it
  finds, so the audit is conservative, and it is kept tractable. The shorter runs are
  there because that knowledge would otherwise include what a newcomer answered (the
  one arrival atom, sized by the totals). Cells of true count 0 are no targets: zeros
  are published (§7.5), and under this model a zero is always known.
- Cells with the same respondents (the same atoms) are one equation: if any of them
  is published, the others are known, so they are suppressed together or not at all.
- A theme's `respondents` is a distinct count (responses with any of its categories).
  Because atoms carry each category's presence, it is still a sum of atoms (those with
  any of the theme's categories) and enters the audit as an equation like any count.
  `mentions` is the sum of published category counts, null when any of them is, so it
  tells nothing beyond them; percentages and Likert figures are published only where
  every count they derive from is (see `bodies.py`), so they add no equation either.
- The program is a relaxation of the integer one (fractional atom counts are
  allowed), so its range contains every integer solution's: a range under 1 is treated
  as determined even where no integer solution but the truth exists.

Never fail open: if the audit raises or runs past its time budget, the tables it could
not prove protected are withheld (published with every cell null).
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

from service.releases.profiles import Layout, Path, Population, base_path

log = logging.getLogger("hearme.releases")

WIDTH = 1.0 - 1e-6  # a range this wide counts as 1 wide (solver tolerance)
BATCH = 3  # rounds of batched solves (a min and a max each) before solves per target
TOTAL = -1  # the table index of a moment's n_responses


@dataclass
class Moment:
    """One publication: its tables (layouts), who was there, and, for an earlier
    release, what it showed (None where suppressed). For the release being audited,
    `shown` is None and `hidden` holds its primary suppressions."""

    population: Population
    layouts: list[Layout]
    tables: list[list[Path]]  # every count cell of each table
    shown: list[dict[Path, int | None]] | None = None
    hidden: list[set[Path]] | None = None
    identities: list[str] = field(default_factory=list)  # a table's request, for repeats


@dataclass
class Verdict:
    hidden: list[set[Path]]  # per table of the new release: the cells to publish as null
    withheld: set[int]  # tables of the new release published with every cell null
    variables: int = 0
    constraints: int = 0
    targets: int = 0
    secondary: int = 0
    solves: int = 0
    derivable: int = 0  # targets already pinned by earlier releases alone
    seconds: float = 0.0


@dataclass
class _Cell:
    moment: int
    table: int
    path: Path
    count: int = 0


@dataclass
class _Problem:
    """The program: equations (groups of cells with the same atoms) over the atoms."""

    cells: list[_Cell]
    matrix: Any  # groups x atoms, CSR, 0/1
    groups: list[list[int]]  # cell indices of each group
    counts: np.ndarray[Any, Any]  # true count of each group
    removable: list[bool]  # every cell of the group is the new release's
    new: int  # index of the new moment
    changes: list[int] = field(default_factory=list)  # rows of arrivals/departures (targets)
    solves: int = 0
    deadline: float = 0.0
    pinned: set[int] = field(default_factory=set)


def primary(
    tables: Sequence[list[Path]], counts: Sequence[dict[Path, int]], kinds: Sequence[str], k: int
) -> list[set[Path]]:
    """§7.5's primary suppressions of each table: counts from 1 to K-1, and every count
    of a body whose base is below K."""
    hidden: list[set[Path]] = []
    for paths, table, kind in zip(tables, counts, kinds, strict=True):
        mine = {p for p in paths if 0 < table[p] < k}
        for p in paths:
            if 0 < table[base_path(kind, p)] < k:
                mine.add(p)
        hidden.append(mine)
    return hidden


def _build(moments: list[Moment], k: int) -> _Problem:
    cells: list[_Cell] = []
    index: dict[tuple[int, int, Path], int] = {}

    def cell_id(m: int, t: int, path: Path) -> int:
        key = (m, t, path)
        found = index.get(key)
        if found is None:
            found = index[key] = len(cells)
            cells.append(_Cell(m, t, path))
        return found

    per_profile: list[list[list[int]]] = []  # moment -> profile -> cell ids
    for m, moment in enumerate(moments):
        for t, paths in enumerate(moment.tables):
            for path in paths:
                cell_id(m, t, path)
        total = cell_id(m, TOTAL, ("n_responses",))
        ids: list[list[int]] = []
        for profile in moment.population.profiles:
            mine = [total]
            for t, layout in enumerate(moment.layouts):
                mine += [index[(m, t, p)] for p in layout.cells(profile)]
            ids.append(mine)
        per_profile.append(ids)
    # atoms: respondents with the same profile at every moment (-1: not there)
    epochs: dict[tuple[int, ...], int] = {}
    everyone: dict[str, list[int]] = {}
    for m, moment in enumerate(moments):
        for rid, p in moment.population.members.items():
            everyone.setdefault(rid, [-1] * len(moments))[m] = p
    for slots in everyone.values():
        epoch = tuple(slots)
        epochs[epoch] = epochs.get(epoch, 0) + 1
    patterns = {tuple(p >= 0 for p in epoch) for epoch in epochs}
    for epoch in list(epochs):
        for variant in _spans(epoch):
            if tuple(p >= 0 for p in variant) in patterns:
                epochs.setdefault(variant, 0)
    atoms: dict[tuple[int, ...], int] = {}
    for epoch, n in epochs.items():
        members: list[int] = []
        for m, p in enumerate(epoch):
            if p >= 0:
                members += per_profile[m][p]
        key = tuple(sorted(members))
        atoms[key] = atoms.get(key, 0) + n
    rows: list[int] = []
    cols: list[int] = []
    sizes = np.zeros(len(atoms), dtype=np.int64)
    for a, (members_key, n) in enumerate(atoms.items()):
        rows += members_key
        cols += [a] * len(members_key)
        sizes[a] = n
    by_cell = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)), shape=(len(cells), len(atoms))
    )
    by_cell.sum_duplicates()
    true = by_cell @ sizes
    for i, c in enumerate(cells):
        c.count = int(true[i] + 0.5)
    groups_of: dict[bytes, list[int]] = {}
    for i in range(len(cells)):
        support = by_cell.indices[by_cell.indptr[i] : by_cell.indptr[i + 1]]
        if len(support):
            groups_of.setdefault(np.sort(support).tobytes(), []).append(i)
    groups = list(groups_of.values())
    heads = [g[0] for g in groups]
    new = len(moments) - 1
    matrix = by_cell[heads] if heads else by_cell[:0]
    counts = [float(cells[h].count) for h in heads]
    changes = _changes(moments, index, by_cell, sizes, k)
    if changes:
        matrix = sparse.vstack([matrix, *(row for row, _ in changes)], format="csr")
        counts += [n for _, n in changes]
    return _Problem(
        cells=cells,
        matrix=matrix,
        groups=groups + [[] for _ in changes],
        counts=np.array(counts, dtype=np.float64),
        removable=[
            all(cells[i].moment == new and cells[i].table != TOTAL for i in g) for g in groups
        ]
        + [False] * len(changes),
        new=new,
        changes=list(range(len(groups), len(groups) + len(changes))),
    )


def _changes(
    moments: list[Moment],
    index: dict[tuple[int, int, Path], int],
    by_cell: Any,
    sizes: np.ndarray[Any, Any],
    k: int,
) -> list[tuple[Any, float]]:
    """The respondents who entered or left a cell between an earlier publication of the
    same table and this one (arrivals, erasures, changed codings). Read twice, a table
    gives their count away by subtraction; where it is from 1 to K-1 it is protected
    like a small cell (a target over those atoms, in no published body)."""
    new = len(moments) - 1
    found: list[tuple[Any, float]] = []
    for m, moment in enumerate(moments[:-1]):
        for t, identity in enumerate(moment.identities):
            for t2, identity2 in enumerate(moments[new].identities):
                if identity != identity2:
                    continue
                for path in moments[new].tables[t2]:
                    before = index.get((m, t, path))
                    if before is None:
                        continue
                    delta = by_cell[index[(new, t2, path)]] - by_cell[before]
                    for sign in (1, -1):
                        part = (sign * delta).multiply(sign * delta > 0).tocsr()
                        part.eliminate_zeros()
                        n = float((part @ sizes)[0])
                        if 0 < n < k:
                            part.data[:] = 1.0
                            found.append((part, n))
    return found


def _spans(epoch: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The same profiles over every shorter run of the moments this one spans: someone
    like this respondent who arrived later or was erased sooner. They are variables
    too (of true count 0), so that the audit never assumes it knows what newcomers and
    erased respondents answered: were only true atoms variables, a single newcomer's
    profile would be known from the totals alone."""
    present = [m for m, p in enumerate(epoch) if p >= 0]
    found = []
    for i, first in enumerate(present):
        for last in present[i:]:
            if (first, last) != (present[0], present[-1]):
                found.append(tuple(p if first <= m <= last else -1 for m, p in enumerate(epoch)))
    return found


class _Timeout(Exception):
    pass


def _solve(problem: _Problem, known: np.ndarray[Any, Any], objective: np.ndarray[Any, Any]) -> Any:
    """Minimise `objective` over the atoms, subject to the known equations."""
    remaining = problem.deadline - time.monotonic()
    if remaining <= 0:
        raise _Timeout
    rows = np.flatnonzero(known)
    problem.solves += 1
    result = linprog(
        objective,
        A_eq=problem.matrix[rows],
        b_eq=problem.counts[rows],
        bounds=(0, None),
        # dual simplex without presolve: on these wide 0/1 programs HiGHS's presolve
        # costs ten times the solve it saves (measured: 0.25 s against 0.03 s)
        method="highs-ds",
        options={"time_limit": remaining, "presolve": False},
    )
    if result.status == 1:
        raise _Timeout
    if result.status != 0:
        raise RuntimeError(f"the audit's program failed: {result.message}")
    return result


def _indicator(problem: _Problem, group: int) -> np.ndarray[Any, Any]:
    row = problem.matrix[group]
    vector = np.zeros(problem.matrix.shape[1])
    vector[row.indices] = 1.0
    return vector


def _check(
    problem: _Problem, known: np.ndarray[Any, Any], targets: list[int]
) -> dict[int, tuple[set[int], float]]:
    """The targets whose range is under 1 wide, each with the equations that bind it
    (non-zero duals of its min and max solves) and the range's width."""
    if not targets:
        return {}
    vectors = {g: _indicator(problem, g) for g in targets}
    # A few solves over all targets at once: any two feasible points where a target
    # differs by 1 or more prove it protected, without solves of its own.
    spread = {g: [problem.counts[g], problem.counts[g]] for g in targets}
    open_ = list(targets)
    weights = np.random.default_rng(len(targets)).random((BATCH, len(targets))) + 0.5
    for round_ in range(BATCH):
        if len(open_) < 3:
            break
        objective = sum(w * vectors[g] for w, g in zip(weights[round_], open_, strict=False))
        assert isinstance(objective, np.ndarray)
        for sign in (1, -1):
            point = _solve(problem, known, sign * objective).x
            for g in open_:
                value = float(vectors[g] @ point)
                spread[g][0] = min(spread[g][0], value)
                spread[g][1] = max(spread[g][1], value)
        open_ = [g for g in open_ if spread[g][1] - spread[g][0] < WIDTH]
    failing: dict[int, tuple[set[int], float]] = {}
    rows = np.flatnonzero(known)
    for g in open_:
        high_result = _solve(problem, known, -vectors[g])
        top = -float(high_result.fun)
        binding = set(rows[np.abs(high_result.eqlin.marginals) > 1e-9].tolist())
        if top - problem.counts[g] >= WIDTH:
            continue
        low_result = _solve(problem, known, vectors[g])
        width = top - float(low_result.fun)
        if width >= WIDTH:
            continue
        binding |= set(rows[np.abs(low_result.eqlin.marginals) > 1e-9].tolist())
        failing[g] = (binding, width)
    return failing


def _cheapest(
    problem: _Problem, candidates: Iterable[int], helps: dict[int, int] | None = None
) -> int | None:
    """The equation to suppress: least information lost (its count, over the number of
    failing targets it binds), fewest cells, then the first."""
    best = None
    for g in candidates:
        share = problem.counts[g] / (helps or {}).get(g, 1)
        key = (share, len(problem.groups[g]), g)
        if best is None or key < best[0]:
            best = (key, g)
    return None if best is None else best[1]


def protect(moments: list[Moment], *, k: int, budget: float) -> Verdict:
    """Decide what the last moment (the release being published) shows. Earlier
    moments are fixed; the last one's `hidden` holds its primary suppressions."""
    started = time.monotonic()
    new = moments[-1]
    assert new.hidden is not None
    hidden = [set(h) for h in new.hidden]
    verdict = Verdict(hidden=hidden, withheld=set())
    try:
        problem = _build(moments, k)
        problem.deadline = started + budget
        _protect(problem, moments, verdict)
    except Exception as exc:  # never fail open: nothing proven, nothing shown
        log.warning("release audit failed", extra={"error_type": type(exc).__name__})
        verdict.withheld = set(range(len(new.tables)))
    for t in verdict.withheld:
        hidden[t] = set(new.tables[t])
    verdict.seconds = round(time.monotonic() - started, 3)
    return verdict


def _protect(problem: _Problem, moments: list[Moment], verdict: Verdict) -> None:
    new_m = problem.new
    cells = problem.cells
    hidden = verdict.hidden

    def is_hidden(i: int) -> bool:
        c = cells[i]
        if c.table == TOTAL:
            return False
        if c.moment == new_m:
            return c.path in hidden[c.table]
        shown = moments[c.moment].shown
        assert shown is not None
        return shown[c.table].get(c.path) is None

    def hide_group(g: int) -> None:
        for i in problem.groups[g]:
            c = cells[i]
            if c.moment == new_m and c.table != TOTAL and c.path not in hidden[c.table]:
                hidden[c.table].add(c.path)

    def show_group(g: int) -> None:
        for i in problem.groups[g]:
            c = cells[i]
            if c.moment == new_m and c.table != TOTAL:
                hidden[c.table].discard(c.path)

    n_groups = len(problem.groups)
    fixed = np.array([not r for r in problem.removable])
    targets: list[int] = []
    for g in range(n_groups):
        members = problem.groups[g]
        if not any(is_hidden(i) for i in members) or problem.counts[g] <= 0:
            continue
        if any(
            not is_hidden(i) and (cells[i].moment != new_m or cells[i].table == TOTAL)
            for i in members
        ):
            continue  # published before: already known, nothing to protect
        hide_group(g)  # a cell with the same respondents would give it away
        targets.append(g)
    targets += problem.changes
    verdict.targets = len(targets)
    known = np.array([bool(g) and not any(is_hidden(i) for i in g) for g in problem.groups])
    verdict.variables = int(problem.matrix.shape[1])
    verdict.constraints = int(known.sum())
    pending = targets
    stuck: set[int] = set()  # pinned by fixed equations alone
    secondary: set[int] = set()
    pinned = problem.pinned  # secondaries shown again: never worth suppressing

    def free(b: int) -> bool:
        return bool(known[b]) and not fixed[b] and b not in pinned

    timed_out: list[int] = []
    try:
        while pending:
            failing = _check(problem, known, pending)
            pending = []
            helps: dict[int, int] = {}  # free equation -> how many failing targets it binds
            for binding, _ in failing.values():
                for b in binding:
                    if free(b):
                        helps[b] = helps.get(b, 0) + 1
            chosen: set[int] = set()
            for g, (binding, width) in failing.items():
                if binding & chosen:  # already loosened this round: look again
                    pending.append(g)
                    continue
                choice = _cheapest(problem, (b for b in binding if free(b)), helps)
                if choice is not None:
                    chosen.add(choice)
                if choice is None and not binding:  # no duals to go by: any shared equation
                    support = problem.matrix[g].indices
                    sharing = np.flatnonzero(problem.matrix[:, support].getnnz(axis=1))
                    choice = _cheapest(problem, (b for b in sharing.tolist() if free(b)))
                if choice is None and any(not known[b] for b in binding):
                    pending.append(g)  # an equation binding it went this round: look again
                    continue
                if choice is None:
                    stuck.add(g)
                    if g in secondary and width < 1e-6:  # hiding it hides nothing: show it
                        pinned.add(g)
                        known[g] = True
                        show_group(g)
                        verdict.secondary -= 1
                    continue
                if known[choice]:
                    known[choice] = False
                    hide_group(choice)
                    secondary.add(choice)
                    verdict.secondary += 1
                    verdict.targets += 1
                    pending.append(choice)
                pending.append(g)
            pending = sorted(set(pending))
    except _Timeout:
        timed_out = pending
    verdict.solves = problem.solves
    # Stuck: only fixed equations pin it (earlier releases and the totals, which this
    # release cannot take back), so it was known before: a small cell stays suppressed,
    # a secondary one is shown again (hiding it hid nothing), and withholding more would
    # hide nothing either. Out of time: not proven protected; withhold
    # every table that shares respondents with it, which removes every equation of this
    # release on it.
    verdict.derivable = len(stuck)
    for g in timed_out:
        support = problem.matrix[g].indices
        sharing = np.flatnonzero(problem.matrix[:, support].getnnz(axis=1))
        verdict.withheld.update(_tables_of(problem, [g, *sharing.tolist()]))


def _tables_of(problem: _Problem, groups: Iterable[int]) -> set[int]:
    return {
        problem.cells[i].table
        for g in groups
        for i in problem.groups[g]
        if problem.cells[i].moment == problem.new and problem.cells[i].table != TOTAL
    }
