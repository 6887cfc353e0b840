"""Counting a question's values over a scope of responses, in the database.

A tally answers: over the responses in scope (sites, waves, `q.<question>` filters),
how many responses are there, and how many gave each value of the question; with
`by`, the same per group. The summary cells answer directly when at most one question
filters and the grouping is by site or wave (or by a question, unfiltered), which is
what dashboards ask; any other shape is counted by one filtered GROUP BY over the narrow
table (one row of small integers per response, `narrow.py`); a question the narrow table
has no slot for is counted from the stored answer rows, spelling values as the cells do
(`cells.VALUE`). Tests hold the three paths to the same counts.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, String, bindparam, func, select, text
from sqlmodel import Session, col

from schemas.stats import StatCell
from service.stats import cells, columns, narrow
from service.validation import CompiledSurvey

TOP = columns.TOP  # the group key of the whole scope
UNGROUPED = columns.UNGROUPED  # the responses without an answer to the `by` question


@dataclass(frozen=True)
class Scope:
    """Which responses count: None means every site (wave) the caller may see."""

    sites: tuple[str, ...] | None = None
    waves: tuple[str, ...] | None = None
    filters: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (question, values), cell spelling


@dataclass
class Counts:
    base: int = 0  # responses in scope
    values: dict[str, int] = field(default_factory=dict)  # cell value → responses


Tally = dict[str, Counts]  # group key (TOP without `by`) → counts


def tally(
    session: Session,
    compiled: CompiledSurvey,
    *,
    question_id: str,
    scope: Scope,
    by: str | None = None,
) -> Tally:
    """Counts of `question_id`'s values in scope, per group of `by` (site, wave or a
    single-valued question id) or for the whole scope (key TOP)."""
    path = _path(compiled, question_id, scope, by)
    if path == "cells":
        return _from_cells(session, compiled.definition.id, question_id, scope, by)
    if path == "narrow":
        return _from_narrow(session, compiled, question_id, scope, by)
    return _from_rows(session, compiled, question_id, scope, by)


def tally_with_groups(
    session: Session,
    compiled: CompiledSurvey,
    *,
    question_id: str,
    scope: Scope,
    by: str | None,
) -> tuple[Counts, Tally]:
    """The whole scope's counts, and each group's of `by` (none without `by`). Where both
    come from the narrow rows, one scan gives both: the groups, with the responses in no
    group (no answer to the `by` question), partition the scope, so the whole is their
    sum (distinct counts too, each response being in one group)."""
    both = {_path(compiled, question_id, scope, None), _path(compiled, question_id, scope, by)}
    if by is not None and both == {"narrow"}:
        grouped = _from_narrow(session, compiled, question_id, scope, by, ungrouped=True)
        whole = Counts()
        for counts in grouped.values():
            whole.base += counts.base
            for value, n in counts.values.items():
                whole.values[value] = whole.values.get(value, 0) + n
        grouped.pop(UNGROUPED, None)
        return whole, grouped
    whole = tally(session, compiled, question_id=question_id, scope=scope).get(TOP, Counts())
    if by is None:
        return whole, {}
    return whole, tally(session, compiled, question_id=question_id, scope=scope, by=by)


def _path(compiled: CompiledSurvey, question_id: str, scope: Scope, by: str | None) -> str:
    filters = scope.filters
    if not filters or (len(filters) == 1 and by in (None, "site", "wave")):
        return "cells"
    grouping = [by] if by not in (None, "site", "wave") else []
    if narrow.covers(compiled, [question_id, *(q for q, _ in filters), *grouping]):
        return "narrow"
    return "rows"


def _cell_query(
    survey_id: str,
    scope: Scope,
    *,
    question: str,
    by_question: str = "",
    values: tuple[str, ...] | None = None,
    by_values: tuple[str, ...] | None = None,
    group: Any = None,
    per_value: bool = True,
) -> Any:
    columns = [group] if group is not None else []
    if per_value:
        columns.append(StatCell.value)
    query = select(*columns, func.sum(StatCell.n)).where(
        col(StatCell.survey_id) == survey_id,
        col(StatCell.question_id) == question,
        col(StatCell.by_question) == by_question,
    )
    if scope.sites is not None:
        query = query.where(col(StatCell.site).in_(scope.sites))
    if scope.waves is not None:
        query = query.where(col(StatCell.wave).in_(scope.waves))
    if values is not None:
        query = query.where(col(StatCell.value).in_(values))
    if by_values is not None:
        query = query.where(col(StatCell.by_value).in_(by_values))
    if columns:
        query = query.group_by(*columns)
    return query


def _from_cells(
    session: Session, survey_id: str, question_id: str, scope: Scope, by: str | None
) -> Tally:
    result: Tally = defaultdict(Counts)
    group = {"site": StatCell.site, "wave": StatCell.wave}.get(by or "")
    if scope.filters:
        ((filter_q, filter_values),) = scope.filters
        base = _cell_query(
            survey_id, scope, question=filter_q, values=filter_values, group=group, per_value=False
        )
        if filter_q == question_id:
            target = _cell_query(
                survey_id, scope, question=question_id, values=filter_values, group=group
            )
        else:
            target = _cell_query(
                survey_id,
                scope,
                question=question_id,
                by_question=filter_q,
                by_values=filter_values,
                group=group,
            )
    elif by in (None, "site", "wave"):
        base = _cell_query(survey_id, scope, question="", group=group, per_value=False)
        target = _cell_query(survey_id, scope, question=question_id, group=group)
    else:
        assert by is not None
        base = _cell_query(survey_id, scope, question=by, group=StatCell.value, per_value=False)
        if by == question_id:  # each group holds exactly its own value
            for key, n in session.execute(base):
                result[key] = Counts(base=int(n), values={key: int(n)})
            return result
        target = _cell_query(
            survey_id,
            scope,
            question=question_id,
            by_question=by,
            group=StatCell.by_value,
        )
    for row in session.execute(base):
        key, n = (
            (row[0], row[1])
            if group is not None or by not in (None, "site", "wave")
            else (
                TOP,
                row[0],
            )
        )
        result[key].base += int(n or 0)
    for row in session.execute(target):
        *key_part, value, n = row
        if n:  # cells emptied by erasures stay as rows of zero
            key = key_part[0] if key_part else TOP
            result[key].values[value] = result[key].values.get(value, 0) + int(n)
    return result


def _value_of(alias: str) -> str:
    return cells.VALUE.replace("a.", f"{alias}.")


# What the rows path counts for a question, by its type: (FROM, value, what to count).
# Each FROM has alias `a` with response_pk, site and wave, restricted by :survey and :q.
_ANSWERS = "answer a"
_THEMES = (
    "effective_category a JOIN codebook b ON b.survey_id = a.survey_id"
    " AND b.question_id = a.question_id"
    " JOIN codebook_category k ON k.codebook_id = b.id AND k.category_id = a.category_id"
)
_VALUED = (_ANSWERS, cells.VALUE, "COUNT(*)")
_MARKED = (_ANSWERS, "''", "COUNT(DISTINCT a.response_pk)")
_CODED = [
    ("coding_outcome a", "'s:' || a.status", "COUNT(*)"),
    ("effective_category a", "'c:' || a.category_id", "COUNT(*)"),
    (_THEMES, "'t:' || k.theme_id", "COUNT(DISTINCT a.response_pk)"),
]
_SOURCES = {
    "choice": [_VALUED],
    "boolean": [_VALUED],
    "likert": [_VALUED],
    "multi_choice": [_VALUED, _MARKED],
    "text": [_MARKED, *_CODED],
}


def _from_rows(
    session: Session,
    compiled: CompiledSurvey,
    question_id: str,
    scope: Scope,
    by: str | None,
) -> Tally:
    """The general case, counted from the stored rows: any number of filters and any
    grouping, as joins on the answers of the filtering questions (each answers at most
    once per response). Only counts leave the database."""
    params: dict[str, Any] = {"survey": compiled.definition.id, "q": question_id}
    binds: list[BindParameter[Any]] = []
    joins: list[str] = []
    conditions: list[str] = []
    for name, values in (("site", scope.sites), ("wave", scope.waves)):
        if values is not None:
            conditions.append(f"a.{name} IN :{name}s")
            params[f"{name}s"] = list(values)
            binds.append(bindparam(f"{name}s", expanding=True, type_=String()))
    for i, (filter_q, filter_values) in enumerate(scope.filters):
        joins.append(
            f"JOIN answer f{i} ON f{i}.response_pk = {{key}} AND f{i}.question_id = :fq{i}"
            f" AND {_value_of(f'f{i}')} IN :fv{i}"
        )
        params[f"fq{i}"] = filter_q
        params[f"fv{i}"] = list(filter_values)
        binds.append(bindparam(f"fv{i}", expanding=True, type_=String()))
    group = "''"
    if by in ("site", "wave"):
        group = f"a.{by}"
    elif by is not None:
        joins.append("JOIN answer g ON g.response_pk = {key} AND g.question_id = :by")
        group = _value_of("g")
        params["by"] = by

    def count(from_: str, value: str, counted: str, key: str, where: list[str]) -> Any:
        sql = (
            f"SELECT {group} AS g, {value} AS v, {counted} FROM {from_} "
            + " ".join(j.format(key=key) for j in joins)
            + " WHERE "
            + " AND ".join(where + conditions)
            + " GROUP BY 1, 2"
        )
        return session.execute(text(sql).bindparams(*binds), params)

    result: Tally = defaultdict(Counts)
    for g, _, n in count("response a", "''", "COUNT(*)", "a.pk", ["a.survey_id = :survey"]):
        result[g].base = int(n)
    where = ["a.survey_id = :survey", "a.question_id = :q"]
    for from_, value, counted in _SOURCES[compiled.questions[question_id].type]:
        for g, v, n in count(from_, value, counted, "a.response_pk", where):
            result[g].values[v] = int(n)
    if by is None:
        return {TOP: result.get("", Counts())}
    return result


def _from_narrow(
    session: Session,
    compiled: CompiledSurvey,
    question_id: str,
    scope: Scope,
    by: str | None,
    *,
    ungrouped: bool = False,
) -> Tally:
    """Any filters and any grouping as one scan of the survey's narrow rows (plus, for a
    text question, the coded rows joined to them by primary key). Only counts leave the
    database. `ungrouped`: also count the responses without an answer to the `by`
    question, under UNGROUPED. The process's in-memory copy of the rows answers first
    (`columns.py`, the same counts in milliseconds); SQL when it cannot."""
    copied = columns.count(
        session,
        compiled,
        question_id,
        sites=scope.sites,
        waves=scope.waves,
        filters=scope.filters,
        by=by,
        ungrouped=ungrouped,
    )
    if copied is not None:
        return {k: Counts(base=base, values=values) for k, (base, values) in copied.items()}
    return _from_narrow_sql(session, compiled, question_id, scope, by, ungrouped=ungrouped)


def _from_narrow_sql(
    session: Session,
    compiled: CompiledSurvey,
    question_id: str,
    scope: Scope,
    by: str | None,
    *,
    ungrouped: bool = False,
) -> Tally:
    """`_from_narrow` as one SQL scan of the narrow rows."""
    found = narrow.layout(compiled)
    params: dict[str, Any] = {"survey": compiled.definition.id, "q": question_id}
    binds: list[BindParameter[Any]] = []
    conditions = ["n.survey_id = :survey"]

    def among(column: narrow.Column, keys: tuple[str, ...], name: str) -> None:
        known = dict(column.codes)
        params[name] = [known[k] for k in keys if k in known]
        binds.append(bindparam(name, expanding=True))
        conditions.append(f"n.{column.name} IN :{name}")

    if scope.sites is not None:
        among(found.sites, scope.sites, "sites")
    if scope.waves is not None:
        among(found.waves, scope.waves, "waves")
    for i, (filter_q, filter_values) in enumerate(scope.filters):
        among(found.single[filter_q], filter_values, f"f{i}")
    groups = found.grouping(by)
    if groups is not None and by not in ("site", "wave") and not ungrouped:
        conditions.append(f"n.{groups.name} IS NOT NULL")
    g = f"COALESCE(n.{groups.name}, 0)" if groups is not None else "0"
    where = " WHERE " + " AND ".join(conditions)

    def run(sql: str) -> Any:
        return session.execute(text(sql).bindparams(*binds), params)

    def group_of(code: int) -> str:
        if groups is None:
            return TOP
        return groups.key(code) if code else UNGROUPED

    result: Tally = defaultdict(Counts)
    if question_id in found.single:
        target = found.single[question_id]
        # one grouping key: SQLite sorts one integer instead of two columns
        rows = run(
            f"SELECT {g} * 4096 + COALESCE(n.{target.name}, 0), COUNT(*)"
            f" FROM stat_row n{where} GROUP BY 1"
        )
        for key, count in rows:
            counts = result[group_of(int(key) // 4096)]
            counts.base += int(count)
            if int(key) % 4096:
                counts.values[target.key(int(key) % 4096)] = int(count)
        return dict(result)
    if question_id in found.multi:
        target = found.multi[question_id]
        m = f"n.{target.name}"
        sums = "".join(f", SUM(({m} / {1 << c}) % 2)" for _, c in target.codes)
        rows = run(f"SELECT {g}, COUNT(*), COUNT({m}){sums} FROM stat_row n{where} GROUP BY 1")
        for code, base, answered, *chosen in rows:
            counts = result[group_of(int(code))]
            counts.base = int(base)
            counts.values = {k: int(c) for (k, _), c in zip(target.codes, chosen, strict=True) if c}
            if answered:
                counts.values[""] = int(answered)
        return dict(result)
    bit = found.text[question_id]
    rows = run(
        f"SELECT {g}, COUNT(*), SUM((n.t / {1 << bit}) % 2) FROM stat_row n{where} GROUP BY 1"
    )
    for code, base, answered in rows:
        counts = result[group_of(int(code))]
        counts.base = int(base)
        if answered:
            counts.values[""] = int(answered)
    # The coded rows (few) lead and find their narrow rows by primary key: CROSS JOIN
    # keeps SQLite from scanning the narrow rows and probing the coded ones instead.
    for from_, value, counted in _CODED:
        rows = run(
            f"SELECT {g}, {value}, {counted} FROM {from_} CROSS JOIN stat_row n{where}"
            " AND n.response_pk = a.response_pk"
            " AND a.survey_id = :survey AND a.question_id = :q GROUP BY 1, 2"
        )
        for code, v, count in rows:
            result[group_of(int(code))].values[v] = int(count)
    return dict(result)
