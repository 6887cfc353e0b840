"""The narrow table (`schemas.stats.stat_row`): every statistic with any filters, in one scan.

The summary cells (`cells.py`) answer a table with no filter or one filter from a few
hundred rows. Any other shape (two filters, a filter and a question group, ...) needs the
responses themselves; joining their answer rows costs one index probe per answer per
filter and grew to seconds at a million responses. Here each response is one row of small
integers: its site and wave, one column per single-valued question (the code of the
answer: its 1-based position in the question's levels), a bitmask per multi-choice
question and one of answered text questions. Any number of filters and a grouping are
then one filtered GROUP BY over the survey's rows: no join, no index probe per answer.
bench/stats.py holds the measurements against the candidates (covering-index joins,
roaring bitmaps) that led here; bench/README.md has the figures.

Exact by construction, as the cells are: `cells.apply` calls `apply` for every change to
the answers (submission batch, import batch, erasure, full rebuild), in the same
transaction, and the rows are derived from the stored answer rows by one INSERT ... SELECT
per call, so one statement per batch whatever its size. Rows never change after that
(answers are immutable; an erasure deletes the row) but for their number: a coding
change numbers the row again (`touch`), since the in-memory copies hold coding outcomes
beside the rows. Coding outcomes are not copied here: the SQL path of theme statistics
joins the coded rows to the narrow rows by primary key.

Every write also stamps the rows it wrote (and records erasures and rebuilds in
`stat_change`) with a number in commit order, drawn at commit (`_stamp`, under
`service.commit_order`): each process's in-memory copy of the rows
(`service/stats/columns.py`) follows `seq > watermark` and so stays exact without
rereading a million rows.

The codes depend on the definition's order of sites, waves, questions and levels
(`Layout`): a definition change that moves any of them rebuilds the survey's rows
(`follow`), in the transaction of the change. A survey with more questions than the
table has slots keeps those questions out of it; statistics that touch them are counted
from the answer rows, as before (`covers`).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from weakref import ref

from sqlalchemy import bindparam, insert, text
from sqlmodel import Session

from schemas.stats import MASK_BITS, MULTI_SLOTS, SINGLE_SLOTS, stat_change
from schemas.surveys import BooleanQuestion, LikertQuestion, Question
from service.commit_order import DRAWN, draw_pg, postgres, stamp_pg
from service.database import before_commit
from service.validation import CompiledSurvey

# The value of an answer row as the cells spell it (see cells.VALUE).
VALUE = "COALESCE(a.option, CAST(CAST(a.number AS INTEGER) AS VARCHAR(20)))"


@dataclass(frozen=True)
class Column:
    """Where a question lives in the narrow table, and the code of each of its values
    (single-valued: 1-based position; multi-choice: bit number; text: its bit in `t`)."""

    name: str
    codes: tuple[tuple[str, int], ...]

    def code(self, key: str) -> int:
        return dict(self.codes)[key]

    def key(self, code: int) -> str:
        return {c: k for k, c in self.codes}[code]


@dataclass(frozen=True)
class Layout:
    sites: Column
    waves: Column
    single: dict[str, Column]
    multi: dict[str, Column]
    text: dict[str, int]  # text question -> its bit in `t`

    def signature(self) -> tuple[Any, ...]:
        return (
            self.sites,
            self.waves,
            tuple(self.single.items()),
            tuple(self.multi.items()),
            tuple(self.text.items()),
        )

    def grouping(self, by: str | None) -> Column | None:
        """The column a `by` groups on: site, wave or a single-valued question."""
        if by == "site":
            return self.sites
        if by == "wave":
            return self.waves
        return self.single[by] if by is not None else None


# per compiled survey (compared by identity: its fields are not hashable), while it lives
_LAYOUTS: dict[int, tuple["ref[CompiledSurvey]", Layout]] = {}


def layout(compiled: CompiledSurvey) -> Layout:
    cached = _LAYOUTS.get(id(compiled))
    if cached is not None and cached[0]() is compiled:
        return cached[1]
    found = _layout(compiled)
    key = id(compiled)
    _LAYOUTS[key] = (ref(compiled, lambda _: _LAYOUTS.pop(key, None)), found)
    return found


def _keys(question: Question) -> list[str]:
    """A question's values as the cells spell them, in the order of `query.levels`."""
    if isinstance(question, BooleanQuestion):
        return ["true", "false"]
    if isinstance(question, LikertQuestion):
        return [str(p.value) for p in question.scale]
    return [o.value for o in getattr(question, "options", ())]


def _layout(compiled: CompiledSurvey) -> Layout:
    definition = compiled.definition
    single: dict[str, Column] = {}
    multi: dict[str, Column] = {}
    texts: dict[str, int] = {}
    for question in definition.questions:
        if question.type in ("choice", "likert", "boolean") and len(single) < SINGLE_SLOTS:
            codes = tuple((k, i) for i, k in enumerate(_keys(question), start=1))
            single[question.id] = Column(f"s{len(single)}", codes)
        elif question.type == "multi_choice" and len(multi) < MULTI_SLOTS:
            options = _keys(question)
            if len(options) <= MASK_BITS:
                codes = tuple((k, i) for i, k in enumerate(options))
                multi[question.id] = Column(f"m{len(multi)}", codes)
        elif question.type == "text" and len(texts) < MASK_BITS:
            texts[question.id] = len(texts)
    return Layout(
        sites=Column("site", tuple((s.id, i) for i, s in enumerate(definition.sites, start=1))),
        waves=Column("wave", tuple((w.id, i) for i, w in enumerate(definition.waves, start=1))),
        single=single,
        multi=multi,
        text=texts,
    )


def covers(compiled: CompiledSurvey, questions: Iterable[str]) -> bool:
    """Whether every one of these questions has its place in the narrow table."""
    found = layout(compiled)
    return all(q in found.single or q in found.multi or q in found.text for q in questions)


# --- keeping the rows -------------------------------------------------------------------


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _case(expression: str, codes: Iterable[tuple[str, int]]) -> str:
    whens = " ".join(f"WHEN {_literal(k)} THEN {c}" for k, c in codes)
    return f"CASE {expression} {whens} END" if whens else "NULL"


def _insert_sql(found: Layout, *, restricted: bool) -> str:
    """One INSERT ... SELECT of the rows of a survey's responses (:pks, or all of them),
    pivoting their answer rows: each single-valued question answers at most once per
    response (MAX picks that row), each multi-choice option at most once (the SUM of
    distinct powers of two is the bitmask), and each text question at most once."""
    names = ["site", "wave"]
    values = [_case("r.site", found.sites.codes), _case("r.wave", found.waves.codes)]
    for qid, column in found.single.items():
        names.append(column.name)
        values.append(
            f"MAX(CASE WHEN a.question_id = {_literal(qid)} THEN {_case(VALUE, column.codes)} END)"
        )
    for qid, column in found.multi.items():
        names.append(column.name)
        powers = tuple((k, 1 << c) for k, c in column.codes)
        values.append(
            f"SUM(CASE WHEN a.question_id = {_literal(qid)} THEN {_case('a.option', powers)} END)"
        )
    if found.text:
        names.append("t")
        powers = tuple((qid, 1 << bit) for qid, bit in found.text.items())
        values.append(f"SUM({_case('a.question_id', powers)})")
    questions = [*found.single, *found.multi, *found.text]
    joined = (
        " LEFT JOIN answer a ON a.response_pk = r.pk AND a.question_id IN ("
        + ", ".join(_literal(q) for q in questions)
        + ")"
        if questions
        else " LEFT JOIN answer a ON 1 = 0"
    )
    # Site, wave, question and option ids are slugs (contract §1), and quoted besides.
    # seq is left to its default and numbered at commit (`_stamp`); migration 0010 runs
    # this before the column exists
    return (
        f"INSERT INTO stat_row (survey_id, response_pk, {', '.join(names)})"  # noqa: S608
        f" SELECT r.survey_id, r.pk, {', '.join(values)} FROM response r{joined}"
        " WHERE r.survey_id = :survey"
        + (" AND r.pk IN :pks" if restricted else "")
        + " GROUP BY r.survey_id, r.pk, r.site, r.wave"
    )


_INSERTS: dict[tuple[tuple[Any, ...], bool], Any] = {}


def _insert(found: Layout, *, restricted: bool) -> Any:
    key = (found.signature(), restricted)
    statement = _INSERTS.get(key)
    if statement is None:
        statement = text(_insert_sql(found, restricted=restricted))
        if restricted:
            statement = statement.bindparams(bindparam("pks", expanding=True))
        _INSERTS[key] = statement
    return statement


_DELETE_SOME = text(
    "DELETE FROM stat_row WHERE survey_id = :survey AND response_pk IN :pks"
).bindparams(bindparam("pks", expanding=True))
_DELETE_ALL = text("DELETE FROM stat_row WHERE survey_id = :survey")


def apply(
    session: Session, compiled: CompiledSurvey, *, sign: int, response_pks: list[int] | None
) -> None:
    """Add (sign 1) the rows of these stored responses, or take them away (sign -1), in
    one statement; None: all of the survey's (added afresh: the old rows go first)."""
    survey_id = compiled.definition.id
    params: dict[str, Any] = {"survey": survey_id}
    if response_pks is not None:
        if not response_pks:
            return
        params["pks"] = response_pks
    if sign < 0 or response_pks is None:
        hold(session, survey_id=survey_id, rebuilding=response_pks is None)
        session.execute(_DELETE_ALL if response_pks is None else _DELETE_SOME, params)
    if sign > 0:
        found = layout(compiled)
        session.execute(_insert(found, restricted=response_pks is not None), params)
    changes = _changes(session, survey_id)
    if response_pks is None:
        changes.everything = changes.logged = True
        session.execute(insert(stat_change), {"survey_id": survey_id, "kind": REBUILT})
    elif sign < 0:
        changes.logged = True
        session.execute(
            insert(stat_change),
            [{"survey_id": survey_id, "response_pk": pk, "kind": GONE} for pk in response_pks],
        )
    else:
        changes.pks.update(response_pks)


def fill(session: Session, compiled: CompiledSurvey) -> None:
    """All of a survey's rows, to an empty table and unnumbered: for migration 0010,
    which runs before the order of migration 0011 exists (its rows get number 0)."""
    session.execute(_insert(layout(compiled), restricted=False), {"survey": compiled.definition.id})


def touch(session: Session, *, survey_id: str, response_pks: Iterable[int]) -> None:
    """These responses' rows changed for the copies (their coding outcome did, which the
    copies hold beside the rows): stamped again at commit, so copies read them anew."""
    _changes(session, survey_id).pks.update(response_pks)


def pending(session: Session) -> bool:
    """Whether this transaction has changed narrow rows it has not committed yet."""
    return bool(session.info.get(_PENDING))


# --- commit order -------------------------------------------------------------------

GONE = "gone"
REBUILT = "rebuilt"
_PENDING = "hearme_stat_rows_pending"
_CHUNK = 1000


@dataclass
class _Changes:
    pks: set[int] = field(default_factory=set)  # rows added or touched
    everything: bool = False  # the survey's rows were derived afresh
    logged: bool = False  # rows of stat_change were written


def _changes(session: Session, survey_id: str) -> _Changes:
    pending: dict[str, _Changes] | None = session.info.get(_PENDING)
    if pending is None:
        pending = session.info[_PENDING] = {}
        before_commit(session, _stamp)
    return pending.setdefault(survey_id, _Changes())


# SQLite: one writer at a time, so the survey's highest number so far, plus one, is in
# commit order (stat_change keeps the numbers of erased rows, so it never goes back).
_NEXT_SQLITE = text(
    "SELECT COALESCE(MAX(x), 0) + 1 FROM ("
    " SELECT MAX(seq) AS x FROM stat_row WHERE survey_id = :survey"
    " UNION ALL SELECT MAX(seq) FROM stat_change WHERE survey_id = :survey)"
)
_STAMP_SOME = text(
    "UPDATE stat_row SET seq = :seq WHERE survey_id = :survey AND response_pk IN :pks"
).bindparams(bindparam("pks", expanding=True))
_STAMP_ALL = text("UPDATE stat_row SET seq = :seq WHERE survey_id = :survey")
_DRAW_AND_STAMP = text(
    "UPDATE stat_row SET seq = " + DRAWN + " WHERE survey_id = :survey"  # noqa: S608  (ours)
    " AND response_pk IN :pks RETURNING seq"
).bindparams(bindparam("pks", expanding=True), sequence="stat_seq")
# only this transaction's own rows can lack a number: every committed one got it
_STAMP_CHANGES = text("UPDATE stat_change SET seq = :seq WHERE survey_id = :survey AND seq IS NULL")


def _stamp(session: Session) -> None:
    """Before COMMIT: this transaction's rows and changes get their number, one per survey
    and transaction (see `service.commit_order`): a submission batch adds two statements,
    the draw (on PostgreSQL with the turn) and one UPDATE by primary key."""
    pending: dict[str, _Changes] = session.info.pop(_PENDING, {})
    for survey_id, changes in sorted(pending.items()):
        params: dict[str, Any] = {"survey": survey_id}
        ordered = sorted(changes.pks)
        if postgres(session) and not changes.everything and 0 < len(ordered) <= _CHUNK:
            # the common case (a batch's rows): the draw and the stamp in one round trip
            seq = stamp_pg(session, _DRAW_AND_STAMP, {**params, "pks": ordered})
            if seq is not None:
                if changes.logged:
                    session.execute(_STAMP_CHANGES, {**params, "seq": seq})
                continue
        if postgres(session):
            params["seq"] = draw_pg(session, "stat_seq")
        else:
            params["seq"] = session.execute(_NEXT_SQLITE, params).scalar_one()
        if changes.everything:
            session.execute(_STAMP_ALL, params)
        for start in range(0, 0 if changes.everything else len(ordered), _CHUNK):
            session.execute(_STAMP_SOME, {**params, "pks": ordered[start : start + _CHUNK]})
        if changes.logged:
            session.execute(_STAMP_CHANGES, params)


_HOLD = {
    False: text("SELECT 1 FROM survey WHERE id = :survey FOR SHARE"),
    True: text("SELECT 1 FROM survey WHERE id = :survey FOR NO KEY UPDATE"),
}


def hold(session: Session, *, survey_id: str, rebuilding: bool) -> None:
    """PostgreSQL: an erasure and a rebuild of the same survey's rows take turns. A
    rebuild's INSERT ... SELECT reads the responses in its own snapshot: it could re-add
    the row of a response an uncommitted erasure is deleting, and the erasure's DELETE,
    whose snapshot predates the rebuild's commit, would not see that new row. Erasures
    share the survey row (several at once), a rebuild takes it alone (FOR NO KEY UPDATE:
    submissions' foreign-key locks on the survey do not wait). Call it before touching the
    cells, so both transactions take their locks in one order. SQLite: one writer anyway."""
    if postgres(session):
        session.execute(_HOLD[rebuilding], {"survey": survey_id})


def follow(session: Session, *, before: CompiledSurvey, after: CompiledSurvey) -> None:
    """After a definition change: rebuild the survey's rows if their codes moved."""
    if layout(before).signature() != layout(after).signature():
        apply(session, after, sign=1, response_pks=None)


_COUNT = text("SELECT COUNT(*) FROM stat_row WHERE survey_id = :survey")


def counted_responses(session: Session, *, survey_id: str) -> int:
    """How many responses of the survey have their narrow row (start-up checks it)."""
    return int(session.execute(_COUNT, {"survey": survey_id}).scalar_one())
