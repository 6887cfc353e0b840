"""Theme statistics (contract §7.3): the paper's Table 3, from the effective sets.

Counted by `tally` like every other statistic (status, category and theme values of
the text question in the summary cells), so filters, `by`, CSV and suppression are
those of §7.1; only the arrangement into themes and the `n_*` counts are new here.
"""

from dataclasses import dataclass
from typing import Protocol

from sqlmodel import Session

from schemas.codebooks import CodebookPublic, ThemeIn
from schemas.stats import CategoryStat, ThemeGroup, Themes, ThemeStat, ThemeTable
from schemas.texts import resolve
from service.stats.numbers import percent
from service.stats.query import StatsQuery
from service.stats.suppression import Grid, Key, cover, settle, suppress
from service.stats.tables import COVERING, REST, counted, question_of
from service.stats.tally import TOP, Counts
from service.validation import CompiledSurvey

CODED = ("s:single", "s:agreed", "s:resolved")
N_FIELDS = ("n_responses", "n_answered", "n_blank", "n_coded", "n_disputed", "n_uncoded")


@dataclass
class ThemeCounts:
    key: str
    n: dict[str, int]
    values: dict[str, int]


def _counts(key: str, counts: Counts) -> ThemeCounts:
    answered = counts.values.get("", 0)
    coded = sum(counts.values.get(s, 0) for s in CODED)
    disputed = counts.values.get("s:disputed", 0)
    n = {
        "n_responses": counts.base,
        "n_answered": answered,
        "n_blank": counts.base - answered,
        "n_coded": coded,
        "n_disputed": disputed,
        "n_uncoded": answered - coded - disputed,
    }
    return ThemeCounts(key=key, n=n, values=counts.values)


def _n_lines(grid: Grid, t: str) -> None:
    grid.line((t, "n_responses"), [(t, "n_answered"), (t, "n_blank")])
    grid.line((t, "n_answered"), [(t, "n_coded"), (t, "n_disputed"), (t, "n_uncoded")])


def _grid(
    found: list[ThemeCounts], themes: list[ThemeIn], k: int | None, *, complete: bool = True
) -> Grid:
    grid = Grid()
    keys: list[tuple[str, ...]] = [(f,) for f in N_FIELDS]
    for theme in themes:
        keys.append(("t:" + theme.id,))
        keys += [("c:" + c.id,) for c in theme.categories]
    for table in found:
        t = table.key
        for field, count in table.n.items():
            grid.cell((t, field), count)
        for theme in themes:
            grid.cell((t, "t:" + theme.id), table.values.get("t:" + theme.id, 0))
            for category in theme.categories:
                grid.cell((t, "c:" + category.id), table.values.get("c:" + category.id, 0))
        _n_lines(grid, t)
        if k is not None and 0 < table.n["n_coded"] < k:
            grid.hide((t, *key) for key in keys)
    if len(found) > 1:
        groups = [table.key for table in found[1:]]
        if cover(grid, TOP, groups, keys, rest=None if complete else REST):
            _n_lines(grid, REST)
        if k is not None:
            settle(grid, _grid(found[:1], themes, k))
    return suppress(grid, k) if k is not None else grid


def _table(table: ThemeCounts, themes: list[ThemeIn], grid: Grid) -> ThemeTable:
    t = table.key
    n = {field: grid.shown((t, field)) for field in N_FIELDS}
    base = n["n_coded"]

    def share(count: int | None) -> float | None:
        return percent(count, base) if count is not None and base else None

    stats = []
    for theme in themes:
        categories = []
        for category in theme.categories:
            key: Key = (t, "c:" + category.id)
            count = grid.shown(key)
            categories.append(
                CategoryStat(
                    id=category.id,
                    label=resolve(category.label),
                    respondents=count,
                    percent=share(count),
                    suppressed=key in grid.hidden,
                )
            )
        respondents = grid.shown((t, "t:" + theme.id))
        mentions = [c.respondents for c in categories]
        stats.append(
            ThemeStat(
                id=theme.id,
                label=resolve(theme.label),
                domain=theme.domain.value if theme.domain else None,
                mentions=None if None in mentions else sum(m or 0 for m in mentions),
                respondents=respondents,
                percent_respondents=share(respondents),
                suppressed=(t, "t:" + theme.id) in grid.hidden,
                categories=categories,
            )
        )
    return ThemeTable(**n, themes=stats)


class CodebookLookup(Protocol):
    """`service.coding.codebooks.codebook_of`, injected by the caller: statistics sit below
    coding (coding keeps the cells up to date), so they do not import it."""

    def __call__(
        self, session: Session, *, survey_id: str, question_id: str, lang: str | None = None
    ) -> CodebookPublic: ...


def themes(
    session: Session,
    compiled: CompiledSurvey,
    *,
    question_id: str,
    query: StatsQuery,
    codebook_of: CodebookLookup,
) -> Themes:
    question = question_of(compiled, question_id, ("text",))
    codebook = codebook_of(
        session, survey_id=compiled.definition.id, question_id=question.id, lang=query.lang
    )
    found = [_counts(key, counts) for key, counts in counted(session, compiled, question.id, query)]
    complete = query.by in (None, *COVERING)
    grid = _grid(found, codebook.themes, query.min_cell, complete=complete)
    top = _table(found[0], codebook.themes, grid)
    body = Themes(question=question.id, min_cell=query.min_cell, **top.model_dump())
    if query.by is not None:
        body.by = query.by
        body.groups = [
            ThemeGroup(
                value=level.value,
                label=level.label,
                **_table(table, codebook.themes, grid).model_dump(),
            )
            for level, table in zip(query.groups, found[1:], strict=True)
        ]
    return body
