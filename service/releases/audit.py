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
programming (HiGHS, through `highspy`: one model kept and re-solved warm, see
`_Solver`) finds the smallest and largest value it
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
import operator
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
from highspy._core import _Highs
from scipy import sparse

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
        ids: list[list[int]] = [[total] for _ in moment.population.profiles]
        for t, layout in enumerate(moment.layouts):
            # tens of thousands of profiles, but few distinct where one table looks
            seen = operator.itemgetter(*layout.seen())
            known: dict[Any, list[int]] = {}
            for mine, profile in zip(ids, moment.population.profiles, strict=True):
                key = seen(profile)
                found = known.get(key)
                if found is None:
                    found = known[key] = [index[(m, t, p)] for p in layout.cells(profile)]
                mine += found
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


class _Solver:
    """One HiGHS model of the program, kept through the whole audit.

    Every solve changes only the objective, and a suppression only frees one row's
    bounds, so the last optimal basis stays primal feasible and HiGHS re-solves from it
    (a warm start) instead of from scratch: on the bench's 8,210 x 687 program a
    re-solve takes milliseconds where a fresh one took a second or two.

    It also keeps every optimal point it found (as the value of each target there).
    Suppressing only removes equations, so a point feasible once stays feasible, and
    any two feasible points bracket each target's range: a target whose known points
    already differ by 1 or more is proven protected without a solve of its own. (Showing
    a secondary suppression again adds back only an equation that every feasible point
    already satisfies, see `_protect`, so the points stay feasible then too.)

    `highspy._core._Highs` is highspy's model without the Python wrapper, which prints
    a banner to stdout on every construction."""

    def __init__(self, problem: _Problem, known: np.ndarray[Any, Any]) -> None:
        self.problem = problem
        columns = problem.matrix.tocsc()
        n_rows, n_cols = columns.shape
        lp = highspy.HighsLp()
        lp.num_col_ = n_cols
        lp.num_row_ = n_rows
        lp.col_cost_ = np.zeros(n_cols)
        lp.col_lower_ = np.zeros(n_cols)
        lp.col_upper_ = np.full(n_cols, highspy.kHighsInf)
        lower, upper = self._bounds(known)
        lp.row_lower_ = lower
        lp.row_upper_ = upper
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = n_cols
        lp.a_matrix_.num_row_ = n_rows
        lp.a_matrix_.start_ = columns.indptr.astype(np.int32)
        lp.a_matrix_.index_ = columns.indices.astype(np.int32)
        lp.a_matrix_.value_ = columns.data.astype(np.float64)
        self.highs = _Highs()
        self.highs.setOptionValue("output_flag", False)
        # without presolve: on these wide 0/1 programs HiGHS's presolve costs ten times
        # the solve it saves, and it would throw the warm basis away
        self.highs.setOptionValue("presolve", "off")
        # primal simplex: after a change of objective or a freed row the last basis is
        # still primal feasible, so primal re-solves take a handful of iterations
        self.highs.setOptionValue("simplex_strategy", 4)
        self.highs.passModel(lp)
        self.known = known.copy()
        self.columns = np.arange(n_cols, dtype=np.int32)
        self.points = np.empty((64, n_cols))  # the optimal atom vectors found, by row
        self.found = 0
        self.low: dict[int, float] = {}  # per target: the least value over the points
        self.high: dict[int, float] = {}

    def _bounds(self, known: np.ndarray[Any, Any]) -> tuple[Any, Any]:
        counts = self.problem.counts
        lower = np.where(known, counts, -highspy.kHighsInf)
        upper = np.where(known, counts, highspy.kHighsInf)
        return lower.astype(np.float64), upper.astype(np.float64)

    def sync(self, known: np.ndarray[Any, Any]) -> None:
        """Take the equations now known (suppressions free rows, shown ones fix them)."""
        changed = np.flatnonzero(known != self.known)
        if not len(changed):
            return
        lower, upper = self._bounds(known)
        self.highs.changeRowsBounds(  # type: ignore[attr-defined]  # missing from its stub
            len(changed), changed.astype(np.int32), lower[changed], upper[changed]
        )
        self.known = known.copy()

    def track(self, targets: Sequence[int]) -> None:
        """Follow targets: their range over the points found so far (and the truth)."""
        new = [g for g in dict.fromkeys(targets) if g not in self.low]
        if not new:
            return
        truth = self.problem.counts[new]
        low, high = truth.copy(), truth.copy()
        if self.found:
            values = self.problem.matrix[new] @ self.points[: self.found].T
            low = np.minimum(low, values.min(axis=1))
            high = np.maximum(high, values.max(axis=1))
        for g, a, b in zip(new, low.tolist(), high.tolist(), strict=True):
            self.low[g], self.high[g] = a, b

    def wide(self, g: int) -> bool:
        return self.high[g] - self.low[g] >= WIDTH

    def solve(self, objective: np.ndarray[Any, Any]) -> tuple[float, Any]:
        """Minimise `objective` over the atoms subject to the known equations; returns
        the optimum and the rows whose duals are non-zero (the equations binding it)."""
        problem = self.problem
        remaining = problem.deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        problem.solves += 1
        highs = self.highs
        highs.setOptionValue("time_limit", highs.getRunTime() + remaining)
        highs.changeColsCost(len(self.columns), self.columns, objective.astype(np.float64))
        highs.run()
        status = highs.getModelStatus()
        if status == highspy.HighsModelStatus.kTimeLimit:
            raise _Timeout
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(f"the audit's program failed: {highs.modelStatusToString(status)}")
        solution = highs.getSolution()
        point = np.asarray(solution.col_value)
        if self.found == len(self.points):
            self.points = np.concatenate([self.points, np.empty_like(self.points)])
        self.points[self.found] = point
        self.found += 1
        if self.low:
            tracked = list(self.low)
            values = problem.matrix[tracked] @ point
            for g, value in zip(tracked, values.tolist(), strict=True):
                self.low[g] = min(self.low[g], value)
                self.high[g] = max(self.high[g], value)
        duals = np.asarray(solution.row_dual)
        binding = set(np.flatnonzero((np.abs(duals) > 1e-9) & self.known).tolist())
        return float(objective @ point), binding


def _indicator(problem: _Problem, group: int) -> np.ndarray[Any, Any]:
    row = problem.matrix[group]
    vector = np.zeros(problem.matrix.shape[1])
    vector[row.indices] = 1.0
    return vector


def _check(
    solver: _Solver, known: np.ndarray[Any, Any], targets: list[int]
) -> dict[int, tuple[set[int], float]]:
    """The targets whose range is under 1 wide, each with the equations that bind it
    (non-zero duals of its min and max solves) and the range's width."""
    if not targets:
        return {}
    problem = solver.problem
    solver.sync(known)
    solver.track(targets)
    open_ = [g for g in targets if not solver.wide(g)]
    # A few solves over all open targets at once: their points often prove many
    # targets protected, without solves of their own.
    weights = np.random.default_rng(len(targets)).random((BATCH, len(open_))) + 0.5
    for round_ in range(BATCH):
        if len(open_) < 3:
            break
        objective = problem.matrix[open_].T @ weights[round_][: len(open_)]
        for sign in (1, -1):
            solver.solve(sign * np.asarray(objective))
        open_ = [g for g in open_ if not solver.wide(g)]
    failing: dict[int, tuple[set[int], float]] = {}
    for g in open_:
        if solver.wide(g):  # proven by a point found for another target
            continue
        vector = _indicator(problem, g)
        top, binding = solver.solve(-vector)
        top = -top
        if top - problem.counts[g] >= WIDTH or solver.wide(g):
            continue
        low, low_binding = solver.solve(vector)
        width = top - low
        if width >= WIDTH or solver.wide(g):
            continue
        failing[g] = (binding | low_binding, width)
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
        solver = _Solver(problem, known)
        while pending:
            failing = _check(solver, known, pending)
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
