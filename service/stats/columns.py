"""Each process's in-memory copy of the narrow rows: any statistic in milliseconds.

A filtered GROUP BY over `stat_row` is one pass, but a pass over a million rows is still
100-300 ms in SQL. Here the same rows live in numpy arrays, one per column, indexed by
response primary key (minus the lowest held), and a statistic is a few boolean masks and
`np.bincount`: a few milliseconds at a million responses, on either engine.

Exact, not eventually so: before answering, a copy catches up from the database in the
reader's own transaction, with one statement (one snapshot) that returns everything
stamped after the copy's watermark. `narrow._stamp` gives every write a number in commit
order (`service.commit_order`): new and re-coded rows carry it in `stat_row.seq`,
erasures and rebuilds in `stat_change`. Having seen number P, a reader has seen every
change numbered below it, so the copy plus the changes after its watermark is the
database at that snapshot. Usually nothing changed and the statement returns no row.
Several processes, workers or replicas each keep their own copy; each is exact.

The copy also holds, per text question, the coding status and effective categories of
each response (a bitmask); theme counts come from the codebook's category-to-theme map,
read at each request, so a codebook that moves categories needs no reload.

Bounds: at most `MAX_COPIES` surveys per process (the least recently used is dropped),
loaded on first use. A first load reads every row: well under a second for a small study,
but 15-50 s at a million responses on a 2-core machine. Above `BACKGROUND_LOAD`
responses it therefore runs in a thread of its own (`_load_behind`), on a connection of
its own, while requests are answered by the SQL path; the copy answers once loaded (and
caught up, as always). `warm` loads in the caller instead (the benchmark times it).

It declines (the caller counts in SQL instead) when a question is
not in the narrow table, a text question has more than 63 categories in use, the primary
keys are too sparse for dense arrays, or the transaction has uncommitted narrow rows of
its own (which no copy may hold).
"""

import logging
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import bindparam, text
from sqlmodel import Session

from service.stats import cells, narrow
from service.validation import CompiledSurvey

MAX_COPIES = 4  # surveys per process
BACKGROUND_LOAD = 100_000  # responses above which a first load runs in a thread
RETRY_LOAD = 30.0  # seconds before a failed background load is tried again
SPARSE = 4  # decline when the key range exceeds this many times the rows (plus slack)
SLACK = 100_000
CATEGORY_BITS = 63
TOP = ""
UNGROUPED = "\x00ungrouped"

Found = dict[str, tuple[int, dict[str, int]]]  # group key -> (responses, value -> count)

log = logging.getLogger("hearme.stats")


@dataclass
class _Coded:
    """One text question's coding outcomes, per response."""

    status: np.ndarray  # int16: 1-based code of the status, 0 uncoded
    categories: np.ndarray  # uint64: bit per effective category
    statuses: dict[str, int] = field(default_factory=dict)
    bits: dict[str, int] = field(default_factory=dict)
    overflow: bool = False  # more categories than bits: declines themes of this question


class Copy:
    """One survey's rows, as of `watermark` (-1: nothing loaded yet)."""

    def __init__(self, found: narrow.Layout) -> None:
        self.layout = found
        self.names = ["site", "wave"]
        self.names += [c.name for c in found.single.values()]
        self.multi = [c.name for c in found.multi.values()]
        self.names += self.multi
        if found.text:
            self.names.append("t")
        self.watermark = -1
        self.base = 0  # the primary key at index 0
        self.size = 0  # indices in use
        self.alive = np.zeros(0, dtype=bool)
        self.columns = {name: self._empty(name, 0) for name in self.names}
        self.coded = {
            q: _Coded(np.zeros(0, dtype=np.int16), np.zeros(0, dtype=np.uint64)) for q in found.text
        }
        self.lock = threading.Lock()
        self.loading = False  # a thread is loading it (`_load_behind`)
        self.failed_at = 0.0  # monotonic time of the last failed background load

    def _empty(self, name: str, n: int) -> np.ndarray:
        if name in self.multi:
            return np.full(n, -1, dtype=np.int64)
        return np.zeros(n, dtype=np.int64 if name == "t" else np.int16)

    # --- keeping it -----------------------------------------------------------------

    def _reset(self) -> None:
        self.alive[:] = False
        for coded in self.coded.values():
            coded.status[:] = 0
            coded.categories[:] = 0

    def _cover(self, lo: int, hi: int) -> None:
        """Make room for primary keys lo..hi."""
        if self.size == 0 and not self.alive.any():
            self.base = lo
        start = min(self.base, lo)
        shift = self.base - start
        needed = max(self.size + shift, hi - start + 1)
        capacity = len(self.alive)
        if shift == 0 and needed <= capacity:
            self.size = max(self.size, needed)
            return
        grown = max(needed, capacity * 2 if shift == 0 else needed + needed // 4)

        def moved(old: np.ndarray, fresh: np.ndarray) -> np.ndarray:
            fresh[shift : shift + self.size] = old[: self.size]
            return fresh

        self.alive = moved(self.alive, np.zeros(grown, dtype=bool))
        for name in self.names:
            self.columns[name] = moved(self.columns[name], self._empty(name, grown))
        for coded in self.coded.values():
            coded.status = moved(coded.status, np.zeros(grown, dtype=np.int16))
            coded.categories = moved(coded.categories, np.zeros(grown, dtype=np.uint64))
        self.base, self.size = start, needed

    def apply(self, rows: Sequence[Any]) -> None:
        """Apply the rows of `_catch_up` (see there for their shape)."""
        if not rows:
            return
        self.watermark = max(self.watermark, max(int(r[1]) for r in rows))
        changes = [r for r in rows if r[0] == 1]
        if any(r[-2] == narrow.REBUILT for r in changes):
            self._reset()  # every row of the survey is among `rows`, numbered afresh
        # Erasures first: a row that exists now was (re-)added after any erasure of its
        # key, or the erasure would have deleted it.
        for r in changes:
            if r[-2] == narrow.GONE and 0 <= int(r[2]) - self.base < self.size:
                self.alive[int(r[2]) - self.base] = False
        stored = [r[2:-2] for r in rows if r[0] == 0]
        if stored:
            self.put_rows(np.array(stored, dtype=np.int64))
        found: dict[tuple[int, str], tuple[list[int], list[str]]] = defaultdict(lambda: ([], []))
        for part, _, pk, *_, question, value in rows:
            if part >= 2 and question in self.coded:
                where, what = found[(part, question)]
                where.append(int(pk))
                what.append(value)
        for (part, question), (where, what) in found.items():
            self.put_coded(question, statuses=part == 2, pks=where, values=what)

    def put_rows(self, values: np.ndarray) -> None:
        """Rows as stored now: columns pk, then `names` (their coding outcomes follow)."""
        pks = values[:, 0]
        self._cover(int(pks.min()), int(pks.max()))
        at = pks - self.base
        self.alive[at] = True
        for j, name in enumerate(self.names, start=1):
            self.columns[name][at] = values[:, j]
        for coded in self.coded.values():
            coded.status[at] = 0
            coded.categories[at] = 0

    def put_coded(
        self, question: str, *, statuses: bool, pks: list[int], values: list[str]
    ) -> None:
        """The coding statuses (or effective categories) of rows just put."""
        coded = self.coded[question]
        at = np.array(pks, dtype=np.int64) - self.base
        held = (at >= 0) & (at < self.size)
        held[held] = self.alive[at[held]]
        if not held.all():  # rows this copy does not hold (yet)
            at = at[held]
            values = [v for v, h in zip(values, held, strict=True) if h]
        if statuses:
            known = coded.statuses
            coded.status[at] = [known.setdefault(v, len(known) + 1) for v in values]
            return
        bits = [coded.bits.setdefault(v, len(coded.bits)) for v in values]
        coded.overflow = coded.overflow or len(coded.bits) > CATEGORY_BITS
        if not coded.overflow:
            masks = np.left_shift(np.uint64(1), np.array(bits, dtype=np.uint64))
            np.bitwise_or.at(coded.categories, at, masks)

    def sparse(self) -> bool:
        return self.size > SPARSE * int(self.alive[: self.size].sum()) + SLACK


# --- catching up ---------------------------------------------------------------------


def _numbers(found: narrow.Layout) -> list[str]:
    """The copied columns of a narrow row `n`, NULL spelt 0 (or -1 for a multi-choice
    mask, whose 0 is an answer with no option)."""
    numbers = ["n.site", "n.wave"]
    numbers += [f"COALESCE(n.{c.name}, 0)" for c in found.single.values()]
    numbers += [f"COALESCE(n.{c.name}, -1)" for c in found.multi.values()]
    if found.text:
        numbers.append("COALESCE(n.t, 0)")
    return numbers


def _catch_up_sql(found: narrow.Layout) -> str:
    """Everything numbered after :after, in one statement: rows of (part, seq, pk,
    <numbers>, q, v). Part 0: a row as stored now; 1: a change (q: its kind); 2 and 3:
    a stored row's coding status and effective categories (q: the question, v: the
    status or category)."""
    numbers = _numbers(found)
    zeros = ", ".join("0" for _ in numbers)
    empty = "CAST('' AS VARCHAR(64))"
    parts = [
        f"SELECT 0, n.seq, n.response_pk, {', '.join(numbers)}, {empty}, {empty}"  # noqa: S608
        " FROM stat_row n WHERE n.survey_id = :survey AND n.seq > :after",
        f"SELECT 1, c.seq, COALESCE(c.response_pk, 0), {zeros}, c.kind, {empty}"  # noqa: S608
        " FROM stat_change c WHERE c.survey_id = :survey AND c.seq > :after",
    ]
    # CROSS JOIN: SQLite starts from the (few) rows numbered after :after
    for part, table, value in (
        (2, "coding_outcome", "status"),
        (3, "effective_category", "category_id"),
    ):
        parts.append(
            f"SELECT {part}, n.seq, x.response_pk, {zeros}, x.question_id, x.{value}"  # noqa: S608
            f" FROM stat_row n CROSS JOIN {table} x"
            " WHERE n.survey_id = :survey AND n.seq > :after"
            " AND x.response_pk = n.response_pk AND x.question_id IN :texts"
        )
    return " UNION ALL ".join(parts if found.text else parts[:2])


_STATEMENTS: dict[tuple[Any, ...], Any] = {}


_TOP = text(
    "SELECT COALESCE(MAX(x), 0) FROM ("
    " SELECT MAX(seq) AS x FROM stat_row WHERE survey_id = :survey"
    " UNION ALL SELECT MAX(seq) FROM stat_change WHERE survey_id = :survey) AS tops"
)
_CODED = {
    True: "SELECT x.response_pk, x.status FROM coding_outcome x",
    False: "SELECT x.response_pk, x.category_id FROM effective_category x",
}


def _load(session: Session, copy: Copy, survey_id: str) -> None:
    """A first load, faster than one catch-up from nothing (plain columns, no UNION):
    every row numbered up to the survey's highest number `top` (by commit order, all
    visible now), and the coding outcomes of the rows it holds. Rows that change
    meanwhile carry a number above `top` (or a 'gone'/'rebuilt' one) and come with the
    catch-up that follows, so the copy ends exact as of that catch-up's snapshot."""
    params: dict[str, Any] = {"survey": survey_id}
    params["top"] = int(session.execute(_TOP, params).scalar_one())
    found = copy.layout
    rows = session.execute(
        text(
            f"SELECT n.response_pk, {', '.join(_numbers(found))} FROM stat_row n"  # noqa: S608
            " WHERE n.survey_id = :survey AND n.seq <= :top"
        ),
        params,
    )
    width = len(copy.names) + 1
    values = np.fromiter(chain.from_iterable(rows), dtype=np.int64).reshape(-1, width)
    if len(values):
        copy.put_rows(values)
    for question in found.text:
        for statuses, select in _CODED.items():
            # Outcomes of rows not loaded (added later) are left out here; those of rows
            # re-coded later than `top` are replaced by the catch-up, which brings the row
            # and its outcomes again: no join needed to match the rows' snapshot.
            coded = session.execute(
                text(select + " WHERE x.survey_id = :survey AND x.question_id = :q"),
                {**params, "q": question},
            ).all()
            if coded:
                pks, what = zip(*coded, strict=True)
                copy.put_coded(question, statuses=statuses, pks=list(pks), values=list(what))
    copy.watermark = params["top"]


def _catch_up(session: Session, copy: Copy, survey_id: str) -> None:
    if copy.watermark < 0:
        _load(session, copy, survey_id)
    # Usually nothing is newer: one index lookup says so, and the UNION (whose plan,
    # generic once prepared, could scan the coded rows) is skipped.
    if int(session.execute(_TOP, {"survey": survey_id}).scalar_one()) <= copy.watermark:
        return
    key = copy.layout.signature()
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = text(_catch_up_sql(copy.layout))
        if copy.layout.text:
            statement = statement.bindparams(bindparam("texts", expanding=True))
        _STATEMENTS[key] = statement
    params: dict[str, Any] = {"survey": survey_id, "after": copy.watermark}
    if copy.layout.text:
        params["texts"] = list(copy.layout.text)
    copy.apply(session.execute(statement, params).all())


_COPIES: "OrderedDict[tuple[Any, ...], Copy]" = OrderedDict()
_COPIES_LOCK = threading.Lock()
_CREATED = text("SELECT created_at FROM survey WHERE id = :survey")


def _copy_of(session: Session, compiled: CompiledSurvey) -> Copy:
    """The survey's copy in this process: per database and survey (a survey created
    afresh under the same id, as tests do, is another one), for this layout of codes."""
    survey_id = compiled.definition.id
    created = session.execute(_CREATED, {"survey": survey_id}).scalar_one_or_none()
    found = narrow.layout(compiled)
    key = (str(session.get_bind().engine.url), survey_id, str(created))
    with _COPIES_LOCK:
        copy = _COPIES.get(key)
        if copy is None or copy.layout.signature() != found.signature():
            copy = _COPIES[key] = Copy(found)
        _COPIES.move_to_end(key)
        while len(_COPIES) > MAX_COPIES:
            _COPIES.popitem(last=False)
    return copy


def _load_behind(session: Session, compiled: CompiledSurvey, copy: Copy) -> None:
    """Start loading `copy` in a daemon thread, on a connection of its own (a read: the
    load is exact whatever commits meanwhile, see `_load`), unless one is loading it or
    failed to lately. The caller answers from SQL meanwhile."""
    with _COPIES_LOCK:
        if copy.loading or time.monotonic() - copy.failed_at < RETRY_LOAD:
            return
        copy.loading = True
    engine = session.get_bind().engine
    survey_id = compiled.definition.id

    def load() -> None:
        started = time.monotonic()
        try:
            with Session(engine) as own, copy.lock:
                _catch_up(own, copy, survey_id)
                own.rollback()
            seconds = time.monotonic() - started
            log.info("statistics copy of %s loaded in %.1f s", survey_id, seconds)
        except Exception as exc:  # a later request tries again (after RETRY_LOAD)
            copy.failed_at = time.monotonic()
            log.warning("statistics copy of %s failed to load: %s", survey_id, type(exc).__name__)
        finally:
            copy.loading = False

    threading.Thread(target=load, name=f"stats-copy-{survey_id}", daemon=True).start()


def warm(session: Session, compiled: CompiledSurvey) -> None:
    """Load (or catch up) the survey's copy now, in the caller's transaction."""
    copy = _copy_of(session, compiled)
    with copy.lock:
        _catch_up(session, copy, compiled.definition.id)


def forget_all() -> None:
    """Drop every copy (they reload on next use)."""
    with _COPIES_LOCK:
        _COPIES.clear()


# --- answering -------------------------------------------------------------------------


def _lookup(codes: list[int]) -> np.ndarray:
    table = np.zeros(max(codes, default=0) + 2, dtype=bool)
    table[codes] = True
    return table


def _within(column: np.ndarray, codes: list[int]) -> np.ndarray:
    table = _lookup(codes)
    inside: np.ndarray = table[np.clip(column, 0, len(table) - 1)]
    return inside


def count(
    session: Session,
    compiled: CompiledSurvey,
    question_id: str,
    *,
    sites: tuple[str, ...] | None,
    waves: tuple[str, ...] | None,
    filters: tuple[tuple[str, tuple[str, ...]], ...],
    by: str | None,
    ungrouped: bool = False,
) -> Found | None:
    """What `tally._from_narrow` counts (the same keys, only non-zero values), from the
    copy; None if the copy cannot answer."""
    found = narrow.layout(compiled)
    if narrow.pending(session):
        return None
    copy = _copy_of(session, compiled)
    if copy.watermark < 0:
        survey_id = compiled.definition.id
        if copy.loading or cells.counted_responses(session, survey_id=survey_id) > BACKGROUND_LOAD:
            _load_behind(session, compiled, copy)
            return None
    with copy.lock:
        _catch_up(session, copy, compiled.definition.id)
        if copy.sparse():
            return None
        coded = copy.coded.get(question_id)
        if coded is not None and coded.overflow:
            return None
        n = copy.size
        cols = {name: column[:n] for name, column in copy.columns.items()}
        mask = copy.alive[:n].copy()

        def among(column: narrow.Column, keys: tuple[str, ...]) -> None:
            known = dict(column.codes)
            mask[:] &= _within(cols[column.name], [known[k] for k in keys if k in known])

        if sites is not None:
            among(found.sites, sites)
        if waves is not None:
            among(found.waves, waves)
        for filter_q, filter_values in filters:
            among(found.single[filter_q], filter_values)
        groups = found.grouping(by)
        if groups is not None:
            g = cols[groups.name].astype(np.int64)
            if by not in ("site", "wave") and not ungrouped:
                mask &= g != 0
            width = max((c for _, c in groups.codes), default=0) + 1
        else:
            g, width = np.zeros(n, dtype=np.int64), 1
        sel = np.flatnonzero(mask)
        gs = g[sel]
        base = np.bincount(gs, minlength=width)

        def group_of(code: int) -> str:
            if groups is None:
                return TOP
            return groups.key(code) if code else UNGROUPED

        result: Found = {}
        for code in np.flatnonzero(base):
            result[group_of(int(code))] = (int(base[code]), {})

        def per_group(weights: np.ndarray) -> np.ndarray:
            return np.bincount(gs[weights], minlength=width)

        def put(value: str, counts: np.ndarray) -> None:
            for code in np.flatnonzero(counts):
                result[group_of(int(code))][1][value] = int(counts[code])

        if question_id in found.single:
            target = found.single[question_id]
            levels = max((c for _, c in target.codes), default=0) + 1
            v = cols[target.name][sel].astype(np.int64)
            both = np.bincount(gs * levels + v, minlength=width * levels).reshape(width, levels)
            for key, level in target.codes:
                put(key, both[:, level])
            return result
        if question_id in found.multi:
            target = found.multi[question_id]
            m = cols[target.name][sel]
            answered = m != -1
            put("", per_group(answered))
            m = np.where(answered, m, 0)
            for key, option in target.codes:
                put(key, per_group((m >> option) & 1 == 1))
            return result
        bit = found.text[question_id]
        put("", per_group((cols["t"][sel] >> bit) & 1 == 1))
        assert coded is not None
        status = coded.status[:n][sel]
        for key, status_code in coded.statuses.items():
            put("s:" + key, per_group(status == status_code))
        cats = coded.categories[:n][sel]
        some = np.flatnonzero(cats)
        cats, gs_some = cats[some], gs[some]
        themes: dict[str, int] = defaultdict(int)
        for category, theme in session.execute(
            _THEMES, {"survey": compiled.definition.id, "q": question_id}
        ):
            if category in coded.bits:
                themes[theme] |= 1 << coded.bits[category]
        for key, b in coded.bits.items():
            hit = (cats >> np.uint64(b)) & np.uint64(1) == 1
            put("c:" + key, np.bincount(gs_some[hit], minlength=width))
        for theme, bits in themes.items():
            hit = cats & np.uint64(bits) != 0
            put("t:" + theme, np.bincount(gs_some[hit], minlength=width))
        return result


_THEMES = text(
    "SELECT k.category_id, k.theme_id FROM codebook b"
    " JOIN codebook_category k ON k.codebook_id = b.id"
    " WHERE b.survey_id = :survey AND b.question_id = :q"
)
