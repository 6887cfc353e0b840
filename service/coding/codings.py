"""Codings and consensus of text answers (contract §6), and the coding queue.

Each write locks the response row first, so concurrent coders of one answer take turns
and the outcome recomputed after each write sees every coding committed before it.
"""

from collections.abc import Iterable

from sqlalchemy import and_, delete, exists, insert, select
from sqlmodel import Session, col

from schemas.base import utcnow
from schemas.codings import (
    Coding,
    CodingCategory,
    CodingIn,
    CodingOutcome,
    CodingPublic,
    CodingsPublic,
    CodingStatus,
    Consensus,
    QueueItem,
)
from schemas.keys import Role
from schemas.responses import Answer, Response
from service.coding.codebooks import category_ids, codebook_row
from service.coding.outcome import announce, outcome, set_outcome
from service.errors import FieldProblem, Invalid, NotFound, invalid_field
from service.keys import Principal
from service.pagination import decode_pk_cursor, encode_cursor
from service.permissions import Action, require
from service.responses import visible_response


def _checked_categories(
    session: Session, response: Response, question_id: str, data: CodingIn
) -> list[str]:
    """The coding's categories, sorted, after checking them against the codebook and the
    answer: unknown categories and blank answers cannot be coded."""
    # share-locked on PostgreSQL so that a codebook edit cannot remove a category while
    # a coding of it is being written
    codebook = codebook_row(
        session, survey_id=response.survey_id, question_id=question_id, lock="share"
    )
    known = set(category_ids(session, codebook_id=codebook.id))
    problems = [
        FieldProblem(("categories", i), f"unknown category {c!r} in this codebook")
        for i, c in enumerate(data.categories)
        if c not in known
    ]
    if problems:
        raise Invalid("unknown categories", problems)
    answer = response.answers.get(question_id)
    if not isinstance(answer, str) or not answer.strip():
        raise invalid_field(("answers", question_id), "a blank answer cannot be coded")
    return sorted(data.categories)


def _category_rows(
    response: Response, question_id: str, categories: Iterable[str], **owner: int
) -> list[dict[str, object]]:
    return [
        {
            **owner,
            "survey_id": response.survey_id,
            "question_id": question_id,
            "category_id": c,
        }
        for c in categories
    ]


def store_coding(
    session: Session, *, response: Response, question_id: str, coder: str, categories: list[str]
) -> Coding:
    """Write one coder's coding (unchecked) with its `coding_category` rows. For trusted
    writers (the demo) too; call `recompute_outcome` after the answer's last write. The
    caller holds the response's row lock (or is alone), so the coding cannot appear
    between the look-up and the insert."""
    where = (
        col(Coding.response_pk) == response.pk,
        col(Coding.question_id) == question_id,
        col(Coding.coder) == coder,
    )
    coding = session.execute(select(Coding).where(*where)).scalar()
    if coding is None:
        assert response.pk is not None
        coding = Coding(
            response_pk=response.pk,
            survey_id=response.survey_id,
            question_id=question_id,
            coder=coder,
            categories=categories,
        )
    coding.categories = categories
    coding.coded_at = utcnow()
    session.add(coding)
    session.flush()
    assert coding.id is not None
    session.execute(delete(CodingCategory).where(col(CodingCategory.coding_id) == coding.id))
    if categories:
        session.execute(
            insert(CodingCategory),
            _category_rows(response, question_id, categories, coding_id=coding.id),
        )
    return coding


def store_consensus(
    session: Session, *, response: Response, question_id: str, set_by: str, categories: list[str]
) -> Consensus:
    """Write an answer's consensus (unchecked) with its `coding_category` rows; call
    `recompute_outcome` afterwards."""
    consensus = session.execute(
        select(Consensus).where(
            col(Consensus.response_pk) == response.pk, col(Consensus.question_id) == question_id
        )
    ).scalar()
    if consensus is None:
        assert response.pk is not None
        consensus = Consensus(
            response_pk=response.pk,
            survey_id=response.survey_id,
            question_id=question_id,
            categories=categories,
            set_by=set_by,
        )
    else:
        consensus.categories = categories
        consensus.set_by = set_by
        consensus.set_at = utcnow()
    session.add(consensus)
    session.flush()
    assert consensus.id is not None
    session.execute(delete(CodingCategory).where(col(CodingCategory.consensus_id) == consensus.id))
    if categories:
        session.execute(
            insert(CodingCategory),
            _category_rows(response, question_id, categories, consensus_id=consensus.id),
        )
    return consensus


def recompute_outcome(session: Session, *, response: Response, question_id: str) -> None:
    """Derive the answer's status and effective set from its codings and consensus, and
    announce them (`coding.changed`): called after every coding or consensus write."""
    sets = [
        frozenset(c)
        for c in session.execute(
            select(col(Coding.categories)).where(
                col(Coding.response_pk) == response.pk, col(Coding.question_id) == question_id
            )
        ).scalars()
    ]
    agreed = session.execute(
        select(col(Consensus.categories)).where(
            col(Consensus.response_pk) == response.pk, col(Consensus.question_id) == question_id
        )
    ).scalar()
    status, effective = outcome(sets, None if agreed is None else frozenset(agreed))
    set_outcome(
        session, response=response, question_id=question_id, status=status, effective=effective
    )
    announce(
        session, response=response, question_id=question_id, status=status, effective=effective
    )


def put_coding(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    response_id: str,
    question_id: str,
    data: CodingIn,
) -> CodingPublic:
    """Store (or replace) the calling key's coding of one answer."""
    require(principal, Action.code)
    response = visible_response(
        session, principal, survey_id=survey_id, response_id=response_id, for_update=True
    )
    categories = _checked_categories(session, response, question_id, data)
    coding = store_coding(
        session,
        response=response,
        question_id=question_id,
        coder=principal.name,
        categories=categories,
    )
    recompute_outcome(session, response=response, question_id=question_id)
    return CodingPublic(coder=coding.coder, categories=coding.categories, coded_at=coding.coded_at)


def put_consensus(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    response_id: str,
    question_id: str,
    data: CodingIn,
) -> CodingsPublic:
    """Set the agreed set of one answer, which overrides every coder's set."""
    require(principal, Action.resolve)
    response = visible_response(
        session, principal, survey_id=survey_id, response_id=response_id, for_update=True
    )
    categories = _checked_categories(session, response, question_id, data)
    store_consensus(
        session,
        response=response,
        question_id=question_id,
        set_by=principal.name,
        categories=categories,
    )
    recompute_outcome(session, response=response, question_id=question_id)
    return _codings_public(session, principal, response, question_id)


def delete_consensus(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    response_id: str,
    question_id: str,
) -> None:
    """Withdraw an answer's consensus; its status falls back to what its coders gave."""
    require(principal, Action.resolve)
    response = visible_response(
        session, principal, survey_id=survey_id, response_id=response_id, for_update=True
    )
    codebook_row(session, survey_id=survey_id, question_id=question_id)
    where = (col(Consensus.response_pk) == response.pk, col(Consensus.question_id) == question_id)
    if session.execute(select(col(Consensus.id)).where(*where)).first() is None:
        raise NotFound("this answer has no consensus")
    session.execute(delete(Consensus).where(*where))
    recompute_outcome(session, response=response, question_id=question_id)


def _codings_public(
    session: Session, principal: Principal, response: Response, question_id: str
) -> CodingsPublic:
    query = (
        select(Coding)
        .where(col(Coding.response_pk) == response.pk, col(Coding.question_id) == question_id)
        .order_by(col(Coding.coder))
    )
    blind = principal.role == Role.coder
    if blind:
        query = query.where(col(Coding.coder) == principal.name)
    codings = list(session.execute(query).scalars())
    public = [
        CodingPublic(coder=c.coder, categories=c.categories, coded_at=c.coded_at) for c in codings
    ]
    if blind:
        status, effective = outcome([frozenset(c.categories) for c in codings], None)
        return CodingsPublic(codings=public, consensus=None, effective=effective, status=status)
    agreed = session.execute(
        select(col(Consensus.categories)).where(
            col(Consensus.response_pk) == response.pk, col(Consensus.question_id) == question_id
        )
    ).scalar()
    stored = session.execute(
        select(col(CodingOutcome.status), col(CodingOutcome.effective)).where(
            col(CodingOutcome.response_pk) == response.pk,
            col(CodingOutcome.question_id) == question_id,
        )
    ).first()
    return CodingsPublic(
        codings=public,
        consensus=agreed,
        effective=None if stored is None else stored.effective,
        status=CodingStatus.uncoded if stored is None else CodingStatus(stored.status),
    )


def get_codings(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    response_id: str,
    question_id: str,
) -> CodingsPublic:
    """The codings of one answer; a coder sees its own alone (blind double coding)."""
    require(principal, Action.code)
    response = visible_response(
        session, principal, survey_id=survey_id, response_id=response_id, for_update=False
    )
    codebook_row(session, survey_id=survey_id, question_id=question_id)
    return _codings_public(session, principal, response, question_id)


def forget_response(session: Session, *, response: Response) -> None:
    """Before a response is erased: withdraw its outcomes through `set_outcome` (so what
    is derived from them follows), then its codings and consensus."""
    questions = session.execute(
        select(col(CodingOutcome.question_id)).where(col(CodingOutcome.response_pk) == response.pk)
    ).scalars()
    for question_id in list(questions):
        set_outcome(
            session, response=response, question_id=question_id, status=None, effective=None
        )
    session.execute(delete(Coding).where(col(Coding.response_pk) == response.pk))
    session.execute(delete(Consensus).where(col(Consensus.response_pk) == response.pk))


def queue(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    question_id: str,
    coded_by_other: bool,
    limit: int,
    cursor: str | None,
) -> tuple[list[QueueItem], str | None]:
    """The next non-blank answers the caller has not coded, oldest first; with
    `coded_by_other`, only those another coder has coded (to double-code them)."""
    require(principal, Action.code)
    codebook_row(session, survey_id=survey_id, question_id=question_id)
    after = decode_pk_cursor(cursor)
    mine = select(col(Coding.id)).where(
        col(Coding.response_pk) == col(Answer.response_pk),
        col(Coding.question_id) == question_id,
        col(Coding.coder) == principal.name,
    )
    query = (
        select(
            col(Answer.response_pk),
            col(Response.id),
            col(Answer.site),
            col(Answer.wave),
            col(Answer.text),
        )
        .join(Response, col(Response.pk) == col(Answer.response_pk))
        .where(
            col(Answer.survey_id) == survey_id,
            col(Answer.question_id) == question_id,
            col(Answer.text).is_not(None),
            ~exists(mine),
        )
        .order_by(col(Answer.response_pk))
        .limit(limit + 1)
    )
    if coded_by_other:
        others = select(col(Coding.id)).where(
            and_(
                col(Coding.response_pk) == col(Answer.response_pk),
                col(Coding.question_id) == question_id,
                col(Coding.coder) != principal.name,
            )
        )
        query = query.where(exists(others))
    visible = principal.visible_sites()
    if visible is not None:
        query = query.where(col(Answer.site).in_(visible))
    if after is not None:
        query = query.where(col(Answer.response_pk) > after)
    rows = session.execute(query).all()
    next_cursor = encode_cursor(rows[limit - 1].response_pk) if len(rows) > limit else None
    items = [
        QueueItem(response_id=r.id, site=r.site, wave=r.wave, text=r.text or "")
        for r in rows[:limit]
    ]
    return items, next_cursor
