"""Two coders side by side (contract §6): their agreement over the answers both coded, and
the answers they coded differently.

Both read one self-join of `coding` on the response, so an answer counts only where both
coders coded it, and a site-bound key sees only the answers of its sites.
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from schemas.agreement import AgreementPublic, Discrepancy
from schemas.codings import Coding, Consensus
from schemas.responses import Response
from service.coding.agreement import Unit, agreement
from service.coding.codebooks import category_ids, codebook_row
from service.errors import invalid_field
from service.keys import Principal
from service.pagination import decode_pk_cursor, encode_cursor
from service.permissions import Action, require

SCAN_BATCH = 1000  # joined rows read per round while looking for a page of discrepancies


def parse_coders(value: str) -> tuple[str, str]:
    """The two coders of `?coders=a,b`: exactly two names, distinct."""
    names = [name.strip() for name in value.split(",")]
    if len(names) != 2 or not all(names):
        raise invalid_field(("query", "coders"), "coders must name exactly two coders: a,b")
    if names[0] == names[1]:
        raise invalid_field(("query", "coders"), "coders must name two different coders")
    return names[0], names[1]


def _categories(session: Session, survey_id: str, question_id: str) -> list[str]:
    """The codebook's category ids in codebook order; 404 without a codebook."""
    codebook = codebook_row(session, survey_id=survey_id, question_id=question_id)
    return category_ids(session, codebook_id=codebook.id)


def _pairs(
    principal: Principal,
    *,
    survey_id: str,
    question_id: str,
    coders: tuple[str, str],
    after: int | None = None,
    with_consensus: bool = False,
) -> Select[Any]:
    """Response pk and id, coder A's and coder B's categories (and the consensus, if asked)
    of every answer both coded, past response pk `after`, in response order."""
    a, b = aliased(Coding, name="coding_a"), aliased(Coding, name="coding_b")
    columns: list[Any] = [
        col(a.response_pk).label("pk"),
        col(Response.id).label("response_id"),
        col(a.categories).label("a"),
        col(b.categories).label("b"),
    ]
    if with_consensus:
        columns.append(col(Consensus.categories).label("consensus"))
    query = (
        select(*columns)
        .join(
            b,
            (col(b.response_pk) == col(a.response_pk))
            & (col(b.question_id) == col(a.question_id))
            & (col(b.coder) == coders[1]),
        )
        .join(Response, col(Response.pk) == col(a.response_pk))
        .where(
            col(a.survey_id) == survey_id,
            col(a.question_id) == question_id,
            col(a.coder) == coders[0],
        )
        .order_by(col(a.response_pk))
    )
    if with_consensus:
        query = query.outerjoin(
            Consensus,
            (col(Consensus.response_pk) == col(a.response_pk))
            & (col(Consensus.question_id) == col(a.question_id)),
        )
    if after is not None:
        query = query.where(col(a.response_pk) > after)
    visible = principal.visible_sites()
    if visible is not None:
        query = query.where(col(Response.site).in_(visible))
    return query


def coder_agreement(
    session: Session, *, principal: Principal, survey_id: str, question_id: str, coders: str
) -> AgreementPublic:
    """Agreement of two coders over the answers both coded (within the caller's sites)."""
    require(principal, Action.read_agreement)
    categories = _categories(session, survey_id, question_id)
    pair = parse_coders(coders)
    rows = session.execute(
        _pairs(principal, survey_id=survey_id, question_id=question_id, coders=pair)
    )
    units = [Unit(row.response_id, row.a, row.b) for row in rows]
    return agreement(categories, units, question=question_id, coders=pair)


def _differing(
    session: Session,
    principal: Principal,
    survey_id: str,
    question_id: str,
    coders: tuple[str, str],
    after: int | None,
) -> Iterator[Any]:
    """The joined rows whose two sets differ, past `after`, read in batches: which sets
    differ is decided here, on sets, not by comparing JSON in SQL."""
    while True:
        query = _pairs(
            principal,
            survey_id=survey_id,
            question_id=question_id,
            coders=coders,
            after=after,
            with_consensus=True,
        )
        rows = session.execute(query.limit(SCAN_BATCH)).all()
        for row in rows:
            if set(row.a) != set(row.b):
                yield row
        if len(rows) < SCAN_BATCH:
            return
        after = rows[-1].pk


def discrepancies(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    question_id: str,
    coders: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Discrepancy], str | None]:
    """The answers both coders coded with different sets, in response order, each with
    its consensus (or None)."""
    require(principal, Action.read_agreement)
    _categories(session, survey_id, question_id)
    pair = parse_coders(coders)
    rows = []
    for row in _differing(
        session, principal, survey_id, question_id, pair, decode_pk_cursor(cursor)
    ):
        rows.append(row)
        if len(rows) > limit:
            break
    page = rows[:limit]
    items = [
        Discrepancy(
            response_id=row.response_id,
            a=sorted(row.a),
            b=sorted(row.b),
            consensus=None if row.consensus is None else sorted(row.consensus),
        )
        for row in page
    ]
    next_cursor = encode_cursor(page[-1].pk) if len(rows) > limit else None
    return items, next_cursor
