"""Composition, Likert and wave-comparison tables (contract §7.1, §7.2, §7.4).

Counts come from `tally` (SQL); this module only arranges a few dozen integers into
the contract's bodies, suppresses them (§7.5) and derives the published figures from
exact integers.
"""

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.stats import mannwhitneyu
from sqlmodel import Session

from schemas.stats import (
    Composition,
    CompositionGroup,
    CountRow,
    Likert,
    LikertGroup,
    LikertTable,
    LikertWave,
    WaveComparison,
)
from schemas.surveys import Question
from service.errors import FieldProblem, Invalid, NotFound
from service.stats.numbers import half_up, percent, share
from service.stats.query import Level, StatsQuery, levels
from service.stats.suppression import Grid, cover, settle, suppress
from service.stats.tally import TOP, Counts, Scope, tally, tally_with_groups
from service.validation import CompiledSurvey

COMPOSABLE = ("choice", "multi_choice", "boolean", "likert")
COVERING = ("site", "wave")  # groupings whose groups hold every response in scope
REST = "\x00rest"  # the responses in no group (no answer to the `by` question)


@dataclass
class Table:
    """One table's true counts: the whole scope (key TOP) or one group."""

    key: str
    n: int
    missing: int
    rows: list[tuple[Level, int]]


def question_of(compiled: CompiledSurvey, question_id: str, kinds: tuple[str, ...]) -> Question:
    question = compiled.questions.get(question_id)
    if question is None:
        raise NotFound(f"survey {compiled.definition.id!r} has no question {question_id!r}")
    if question.type not in kinds:
        raise Invalid(
            "this statistic does not apply to that question",
            [FieldProblem(("path", "question"), f"{question_id!r} is a {question.type} question")],
        )
    return question


def _table(question: Question, key: str, counts: Counts, lang: str | None) -> Table:
    rows = [(level, counts.values.get(level.key, 0)) for level in levels(question, lang)]
    if question.type == "multi_choice":
        n = counts.values.get("", 0)
    else:
        n = sum(count for _, count in rows)
    return Table(key=key, n=n, missing=counts.base - n, rows=rows)


def counted(
    session: Session, compiled: CompiledSurvey, question_id: str, query: StatsQuery
) -> list[tuple[str, Counts]]:
    """The whole scope's counts, then each group's of `by`, in the groups' order."""
    whole, grouped = tally_with_groups(
        session, compiled, question_id=question_id, scope=query.scope, by=query.by
    )
    result = [(TOP, whole)]
    if query.by is not None:
        result += [(g.key, grouped.get(g.key, Counts())) for g in query.groups]
    return result


def tables(
    session: Session, compiled: CompiledSurvey, question: Question, query: StatsQuery
) -> list[Table]:
    return [
        _table(question, key, counts, query.lang)
        for key, counts in counted(session, compiled, question.id, query)
    ]


def suppressed(
    question: Question, found: list[Table], k: int | None, *, complete: bool = True
) -> Grid:
    """The grid of every count in `found` with what K hides (nothing without K).
    `complete`: the groups cover the whole scope (by site or wave; not by a question)."""
    grid = Grid()
    exclusive = question.type != "multi_choice"
    for table in found:
        t = table.key
        members = [grid.cell((t, "row", level.key), count) for level, count in table.rows]
        grid.cell((t, "n"), table.n)
        grid.cell((t, "missing"), table.missing)
        if exclusive:
            grid.line((t, "n"), members)
        if k is not None and 0 < table.n < k:
            grid.hide([(t, "n"), (t, "missing"), *members])
    if len(found) > 1:
        groups = [table.key for table in found[1:]]
        fields = [("row", level.key) for level, _ in found[0].rows] + [("missing",), ("n",)]
        if cover(grid, TOP, groups, fields, rest=None if complete else REST) and exclusive:
            grid.line((REST, "n"), [(REST, "row", level.key) for level, _ in found[0].rows])
        if k is not None:
            settle(grid, suppressed(question, found[:1], k))
    return suppress(grid, k) if k is not None else grid


def _rows(table: Table, grid: Grid) -> tuple[int | None, int | None, list[CountRow]]:
    n = grid.shown((table.key, "n"))
    rows = []
    for level, _ in table.rows:
        key = (table.key, "row", level.key)
        count = grid.shown(key)
        rows.append(
            CountRow(
                value=level.value,
                label=level.label,
                count=count,
                percent=percent(count, n) if count is not None and n else None,
                suppressed=key in grid.hidden,
            )
        )
    return n, grid.shown((table.key, "missing")), rows


def composition(
    session: Session, compiled: CompiledSurvey, *, question_id: str, query: StatsQuery
) -> Composition:
    question = question_of(compiled, question_id, COMPOSABLE)
    found = tables(session, compiled, question, query)
    grid = suppressed(question, found, query.min_cell, complete=query.by in (None, *COVERING))
    n, missing, rows = _rows(found[0], grid)
    body = Composition(
        question=question.id, n=n, missing=missing, rows=rows, min_cell=query.min_cell
    )
    if query.by is not None:
        body.by = query.by
        body.groups = []
        for level, table in zip(query.groups, found[1:], strict=True):
            n, missing, rows = _rows(table, grid)
            body.groups.append(
                CompositionGroup(
                    value=level.value, label=level.label, n=n, missing=missing, rows=rows
                )
            )
    return body


def _likert_figures(table: Table, grid: Grid) -> dict[str, float | None]:
    """Mean, median and top/bottom-2 shares from the true counts, published with the base."""
    figures: dict[str, float | None] = dict.fromkeys(
        ("mean", "median", "top2_percent", "bottom2_percent")
    )
    n = table.n
    if n == 0 or (table.key, "n") in grid.hidden:
        return figures
    points = [(int(level.value), count) for level, count in table.rows]
    figures["mean"] = half_up(Fraction(sum(v * c for v, c in points), n), 2)
    figures["median"] = float(_median(points, n))
    figures["top2_percent"] = half_up(share(sum(c for _, c in points[-2:]), n), 1)
    figures["bottom2_percent"] = half_up(share(sum(c for _, c in points[:2]), n), 1)
    return figures


def _median(points: list[tuple[int, int]], n: int) -> Fraction:
    def at(position: int) -> int:
        seen = 0
        for value, count in points:
            seen += count
            if position < seen:
                return value
        raise AssertionError("position beyond the counts")

    if n % 2:
        return Fraction(at(n // 2))
    return Fraction(at(n // 2 - 1) + at(n // 2), 2)


def likert(
    session: Session, compiled: CompiledSurvey, *, question_id: str, query: StatsQuery
) -> Likert:
    question = question_of(compiled, question_id, ("likert",))
    found = tables(session, compiled, question, query)
    grid = suppressed(question, found, query.min_cell, complete=query.by in (None, *COVERING))
    n, missing, rows = _rows(found[0], grid)
    body = Likert(
        question=question.id,
        n=n,
        missing=missing,
        rows=rows,
        min_cell=query.min_cell,
        **_likert_figures(found[0], grid),
    )
    if query.by is not None:
        body.by = query.by
        body.groups = []
        for level, table in zip(query.groups, found[1:], strict=True):
            n, missing, rows = _rows(table, grid)
            body.groups.append(
                LikertGroup(
                    value=level.value,
                    label=level.label,
                    n=n,
                    missing=missing,
                    rows=rows,
                    **_likert_figures(table, grid),
                )
            )
    return body


def compare(
    session: Session, compiled: CompiledSurvey, *, question_id: str, query: StatsQuery
) -> WaveComparison:
    """Wave b against wave a (the two `wave` parameters, in order)."""
    question = question_of(compiled, question_id, ("likert",))
    waves = query.scope.waves or ()
    if len(waves) != 2:
        raise Invalid(
            "a comparison needs two waves",
            [FieldProblem(("query", "wave"), "give exactly two distinct waves, a then b")],
        )
    sides = []
    for wave in waves:
        scope = Scope(sites=query.scope.sites, waves=(wave,), filters=query.scope.filters)
        counts = tally(session, compiled, question_id=question.id, scope=scope).get(TOP, Counts())
        table = _table(question, TOP, counts, query.lang)
        grid = suppressed(question, [table], query.min_cell)
        n, missing, rows = _rows(table, grid)
        side = LikertWave(
            question=question.id,
            wave=wave,
            n=n,
            missing=missing,
            rows=rows,
            **_likert_figures(table, grid),
        )
        sides.append((table, side))
    (a, body_a), (b, body_b) = sides
    result = WaveComparison(
        question=question.id,
        min_cell=query.min_cell,
        waves=[body_a, body_b],
        mean_difference=None,
        top2_difference=None,
        u=None,
        p_value=None,
    )
    if _published(body_a) and _published(body_b):
        result.mean_difference = half_up(_exact_mean(b) - _exact_mean(a), 2)
        result.top2_difference = half_up(_exact_top2(b) - _exact_top2(a), 1)
        test = mannwhitneyu(_sample(a), _sample(b))
        result.u = float(test.statistic)
        result.p_value = float(test.pvalue)
    return result


def _published(side: LikertTable) -> bool:
    return side.n is not None and side.n > 0


def _exact_mean(table: Table) -> Fraction:
    return Fraction(sum(int(level.value) * c for level, c in table.rows), table.n)


def _exact_top2(table: Table) -> Fraction:
    return share(sum(c for _, c in table.rows[-2:]), table.n)


def _sample(table: Table) -> "np.ndarray[tuple[int], np.dtype[np.int64]]":
    """The answers themselves, rebuilt from the counts (the test needs only their ranks)."""
    values = np.array([int(level.value) for level, _ in table.rows], dtype=np.int64)
    return np.repeat(values, [count for _, count in table.rows])
