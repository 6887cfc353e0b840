"""Keeping the summary cells (`schemas.stats.StatCell`) exact.

Every change to what statistics count goes through `apply`, which derives the cells of
the affected responses from the stored rows with one SQL statement and adds them (or,
with sign -1, takes them away) by upsert. Because the same statement serves
submissions, imports, erasures, coding changes and full rebuilds, the cells are by
construction what a GROUP BY over the rows would give; a test holds them to that after
concurrent writes.

Upserts run in key order, so two PostgreSQL transactions touching the same cells lock
them in the same order and cannot deadlock; SQLite serialises writers anyway.
"""

from collections.abc import Collection, Iterable
from enum import StrEnum
from typing import Any

from sqlalchemy import BindParameter, String, bindparam, delete, func, select, text
from sqlmodel import Session, col

from schemas.responses import Response
from schemas.stats import StatCell
from service.stats import narrow
from service.validation import CompiledSurvey

# The value of a single-valued answer as the cells spell it: the option ('true'/'false'
# for booleans), or the likert integer as text.
VALUE = "COALESCE(a.option, CAST(CAST(a.number AS INTEGER) AS VARCHAR(20)))"

SINGLE = ("choice", "boolean", "likert")  # exclusive answers: may filter and group
MULTI = ("multi_choice",)
TEXT = ("text",)

# Each cell is split over this many rows, summed when read: concurrent PostgreSQL
# transactions counting into one site and wave then mostly lock different rows. A full
# count spreads the responses by primary key; a batch of given responses (a group
# commit, an import batch, an erasure) counts into one shard, that of its first response:
# one row per cell and batch, not up to `SHARDS` (the upsert's rows grew eightfold with
# batches), while batches of other processes mostly land on other shards.
SHARDS = 8

ANSWERED = ""  # the value that counts responses which answered a multi-choice or text question


class Source(StrEnum):
    """What a call to `apply` counts."""

    answers = "answers"  # responses, their answers and answered markers
    statuses = "statuses"  # 's:<status>' of coded text answers
    categories = "categories"  # 'c:<category>' of effective sets
    themes = "themes"  # 't:<theme>' of effective sets, once per response and theme


ALL_SOURCES = frozenset(Source)
ANSWER_SOURCES = frozenset({Source.answers})
CODED_SOURCES = frozenset({Source.statuses, Source.categories, Source.themes})


def questions_of(compiled: CompiledSurvey, kinds: Iterable[str]) -> list[str]:
    kinds = tuple(kinds)
    return [q.id for q in compiled.definition.questions if q.type in kinds]


def signature(compiled: CompiledSurvey) -> tuple[tuple[str, str], ...]:
    """What the cells of a survey depend on in its definition; options and labels aside."""
    return tuple(
        (q.id, q.type) for q in compiled.definition.questions if q.type in SINGLE + MULTI + TEXT
    )


def _given(column: str, *, arrays: bool) -> str:
    """`column` among the given responses (bind :pks). PostgreSQL gets them as one array
    parameter: one statement text whatever the batch's size, which psycopg prepares once
    and the server plans once; SQLite gets them expanded."""
    return f"{column} = ANY(CAST(:pks AS BIGINT[]))" if arrays else f"{column} IN :pks"


def _rows_of(alias: str, questions: str, *, restricted: bool, arrays: bool = False) -> str:
    """Which rows of `alias` count: those of the given responses (`restricted`), or all
    of the survey's. Restricted, the survey is left out on purpose: the responses are
    the survey's anyway, and SQLite would otherwise pick the (survey, question) index
    and scan every answer to the question, which grows with the study, instead of
    looking the few responses up by primary key."""
    if restricted:
        given = _given(f"{alias}.response_pk", arrays=arrays)
        return f" WHERE {given} AND {alias}.question_id IN :{questions}"
    return f" WHERE {alias}.survey_id = :survey AND {alias}.question_id IN :{questions}"


def _values_sql(sources: Collection[Source], *, restricted: bool, arrays: bool = False) -> str:
    """A SELECT of (response_pk, site, wave, q, v): every counted value of the survey's
    responses (bind :survey, and :valued, :marked, :coded, :pks as `sources` need)."""
    vals: list[str] = []
    if Source.answers in sources:
        vals.append(
            f"SELECT a.response_pk, a.site, a.wave, a.question_id AS q, {VALUE} AS v FROM answer a"
            + _rows_of("a", "valued", restricted=restricted, arrays=arrays)
        )
        vals.append(
            "SELECT DISTINCT a.response_pk, a.site, a.wave, a.question_id AS q, '' AS v"
            " FROM answer a" + _rows_of("a", "marked", restricted=restricted, arrays=arrays)
        )
    if Source.statuses in sources:
        vals.append(
            "SELECT o.response_pk, o.site, o.wave, o.question_id AS q, 's:' || o.status AS v"
            " FROM coding_outcome o" + _rows_of("o", "coded", restricted=restricted, arrays=arrays)
        )
    if Source.categories in sources:
        vals.append(
            "SELECT e.response_pk, e.site, e.wave, e.question_id AS q, 'c:' || e.category_id AS v"
            " FROM effective_category e"
            + _rows_of("e", "coded", restricted=restricted, arrays=arrays)
        )
    if Source.themes in sources:
        vals.append(
            "SELECT DISTINCT e.response_pk, e.site, e.wave, e.question_id AS q,"
            " 't:' || k.theme_id AS v"
            " FROM effective_category e"
            " JOIN codebook b ON b.survey_id = e.survey_id AND b.question_id = e.question_id"
            " JOIN codebook_category k ON k.codebook_id = b.id AND k.category_id = e.category_id"
            + _rows_of("e", "coded", restricted=restricted, arrays=arrays)
        )
    return " UNION ALL ".join(vals)


def _statement(sources: frozenset[Source], *, restricted: bool, arrays: bool = False) -> Any:
    shard = "CAST(:shard AS INTEGER)" if restricted else "{pk} % :shards"
    responses = ""
    if Source.answers in sources:
        responses = (
            " UNION ALL SELECT '', '', '', '', r.site, r.wave, "
            + shard.format(pk="r.pk")
            + " FROM response r"
            # Restricted, by primary key alone (as in `_rows_of`): with the survey too,
            # PostgreSQL may scan the survey's index and filter every response it has.
            + (
                " WHERE " + _given("r.pk", arrays=arrays)
                if restricted
                else " WHERE r.survey_id = :survey"
            )
        )
    sql = (
        "WITH vals AS (" + _values_sql(sources, restricted=restricted, arrays=arrays) + "),"
        " dims AS (SELECT a.response_pk, a.question_id AS f, "
        + VALUE
        + " AS fv FROM answer a"
        + _rows_of("a", "single", restricted=restricted, arrays=arrays)
        + "),"
        " cells AS (SELECT q, v, '' AS bq, '' AS bv, site, wave, "
        + shard.format(pk="response_pk")
        + " AS shard FROM vals"
        " UNION ALL SELECT vals.q, vals.v, dims.f, dims.fv, vals.site, vals.wave, "
        + shard.format(pk="vals.response_pk")
        + " FROM vals JOIN dims ON dims.response_pk = vals.response_pk AND dims.f <> vals.q"
        + responses
        + ")"
        " INSERT INTO stat_cell"
        " (survey_id, question_id, value, by_question, by_value, site, wave, shard, n)"
        " SELECT :survey, q, v, bq, bv, site, wave, shard, :sign * COUNT(*) FROM cells"
        " WHERE 1 = 1 GROUP BY q, v, bq, bv, site, wave, shard"
        " ORDER BY q, bq, bv, site, wave, v, shard"
        " ON CONFLICT (survey_id, question_id, by_question, by_value, site, wave, value, shard)"
        " DO UPDATE SET n = stat_cell.n + excluded.n"
    )
    names = ["single"]
    if Source.answers in sources:
        names += ["valued", "marked"]
    params: list[BindParameter[Any]] = [
        bindparam(name, expanding=True, type_=String()) for name in names
    ]
    if sources & CODED_SOURCES:
        params.append(bindparam("coded", expanding=True, type_=String()))
    if restricted and not arrays:
        params.append(bindparam("pks", expanding=True))
    return text(sql).bindparams(*params)


_STATEMENTS: dict[tuple[frozenset[Source], bool, bool], Any] = {}


def apply(
    session: Session,
    compiled: CompiledSurvey,
    *,
    sign: int,
    response_pks: list[int] | None,
    sources: Collection[Source] = ALL_SOURCES,
    coded_questions: list[str] | None = None,
) -> None:
    """Add (sign 1) or take away (sign -1) the cells of these responses (None: all of the
    survey's), counting what `sources` name. Run it after rows are stored and before
    they are deleted. Counting the answers, it keeps the narrow rows too (`narrow.apply`):
    every write path that keeps the cells keeps them, with one more statement."""
    arrays = session.get_bind().dialect.name == "postgresql"
    key = (frozenset(sources), response_pks is not None, arrays)
    if Source.answers in key[0] and (sign < 0 or response_pks is None):
        narrow.hold(session, survey_id=compiled.definition.id, rebuilding=response_pks is None)
    statement = _STATEMENTS.get(key)
    if statement is None:
        statement = _STATEMENTS[key] = _statement(key[0], restricted=key[1], arrays=arrays)
    params: dict[str, Any] = {
        "survey": compiled.definition.id,
        "sign": sign,
        "valued": questions_of(compiled, SINGLE + MULTI),
        "marked": questions_of(compiled, MULTI + TEXT),
        "single": questions_of(compiled, SINGLE),
    }
    if key[0] & CODED_SOURCES:
        params["coded"] = (
            coded_questions if coded_questions is not None else questions_of(compiled, TEXT)
        )
    if response_pks is None:
        params["shards"] = SHARDS
    else:
        params["pks"] = response_pks
        params["shard"] = response_pks[0] % SHARDS if response_pks else 0
    session.execute(statement, params)
    if Source.answers in key[0]:  # the narrow rows follow the answers, in this transaction
        narrow.apply(session, compiled, sign=sign, response_pks=response_pks)
    elif response_pks:  # coding outcomes: the in-memory copies of the rows hold them too
        narrow.touch(session, survey_id=compiled.definition.id, response_pks=response_pks)


def rebuild(session: Session, compiled: CompiledSurvey) -> None:
    """Count a survey's cells afresh (after a definition change that moves them)."""
    narrow.hold(session, survey_id=compiled.definition.id, rebuilding=True)
    session.execute(delete(StatCell).where(col(StatCell.survey_id) == compiled.definition.id))
    apply(session, compiled, sign=1, response_pks=None)


def rebuild_themes(session: Session, compiled: CompiledSurvey, *, question_id: str) -> None:
    """Recount the theme cells of a question (after its codebook moved categories)."""
    session.execute(
        delete(StatCell).where(
            col(StatCell.survey_id) == compiled.definition.id,
            col(StatCell.question_id) == question_id,
            col(StatCell.value).startswith("t:"),
        )
    )
    apply(
        session,
        compiled,
        sign=1,
        response_pks=None,
        sources={Source.themes},
        coded_questions=[question_id],
    )


def counted_responses(session: Session, *, survey_id: str) -> int:
    total = session.execute(
        select(func.coalesce(func.sum(StatCell.n), 0)).where(
            col(StatCell.survey_id) == survey_id,
            col(StatCell.question_id) == "",
            col(StatCell.by_question) == "",
        )
    ).scalar_one()
    return int(total)


def stored_responses(session: Session, *, survey_id: str) -> int:
    return int(
        session.execute(
            select(func.count()).select_from(Response).where(col(Response.survey_id) == survey_id)
        ).scalar_one()
    )
