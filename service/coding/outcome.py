"""The status and effective set of a coded answer (contract §6), and the one writer of
the tables that hold them.

Every statistic reads `coding_outcome` and `effective_category`, so all their writes go
through `set_outcome`: one place to keep them consistent, and one place for anything
derived from them (summaries) to hook into.
"""

from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update
from sqlmodel import Session, col

from schemas.codings import CodingOutcome, CodingStatus, EffectiveCategory
from schemas.events import EventType
from schemas.responses import Response
from service.events import outbox
from service.stats import cells
from service.surveys import load_compiled
from service.validation import CompiledSurvey


def outcome(
    codings_sets: Sequence[frozenset[str]], consensus: frozenset[str] | None
) -> tuple[CodingStatus, list[str] | None]:
    """The status and the effective set (sorted) of one answer, from its coders' sets and
    its consensus; a consensus always wins, and disagreeing coders have no effective set."""
    if consensus is not None:
        return CodingStatus.resolved, sorted(consensus)
    if not codings_sets:
        return CodingStatus.uncoded, None
    first = codings_sets[0]
    if len(codings_sets) == 1:
        return CodingStatus.single, sorted(first)
    if all(s == first for s in codings_sets[1:]):
        return CodingStatus.agreed, sorted(first)
    return CodingStatus.disputed, None


def set_outcome(
    session: Session,
    *,
    response: Response,
    question_id: str,
    status: str | None,
    effective: list[str] | None,
) -> None:
    """Record an answer's status and effective set; a status of None (or uncoded) removes
    them. Does nothing when they are unchanged."""
    assert response.pk is not None
    pk = response.pk
    if status == CodingStatus.uncoded:
        status = None
    new_effective = sorted(set(effective)) if effective is not None and status else None
    old = session.execute(
        select(col(CodingOutcome.status), col(CodingOutcome.effective)).where(
            col(CodingOutcome.response_pk) == pk, col(CodingOutcome.question_id) == question_id
        )
    ).first()
    if old is None and status is None:
        return
    if old is not None and old.status == status and old.effective == new_effective:
        return
    compiled = load_compiled(session, survey_id=response.survey_id)
    _count(session, compiled, pk=pk, question_id=question_id, sign=-1)  # what it counted
    if status is None:
        session.execute(
            delete(CodingOutcome).where(
                col(CodingOutcome.response_pk) == pk, col(CodingOutcome.question_id) == question_id
            )
        )
    elif old is None:
        session.execute(
            insert(CodingOutcome).values(
                response_pk=pk,
                question_id=question_id,
                survey_id=response.survey_id,
                site=response.site,
                wave=response.wave,
                status=str(status),
                effective=new_effective,
            )
        )
    else:
        session.execute(
            update(CodingOutcome)
            .where(
                col(CodingOutcome.response_pk) == pk, col(CodingOutcome.question_id) == question_id
            )
            .values(status=str(status), effective=new_effective)
        )
    old_effective = set(old.effective or []) if old is not None else set()
    wanted = set(new_effective or [])
    gone = old_effective - wanted
    if gone:
        session.execute(
            delete(EffectiveCategory).where(
                col(EffectiveCategory.response_pk) == pk,
                col(EffectiveCategory.question_id) == question_id,
                col(EffectiveCategory.category_id).in_(sorted(gone)),
            )
        )
    added = wanted - old_effective
    if added:
        session.execute(
            insert(EffectiveCategory),
            [
                {
                    "response_pk": pk,
                    "question_id": question_id,
                    "category_id": category,
                    "survey_id": response.survey_id,
                    "site": response.site,
                    "wave": response.wave,
                }
                for category in sorted(added)
            ],
        )
    _count(session, compiled, pk=pk, question_id=question_id, sign=1)  # what it counts now


def _count(
    session: Session, compiled: CompiledSurvey, *, pk: int, question_id: str, sign: int
) -> None:
    """The answer's statuses, categories and themes in the statistics cells."""
    cells.apply(
        session,
        compiled,
        sign=sign,
        response_pks=[pk],
        sources=cells.CODED_SOURCES,
        coded_questions=[question_id],
    )


def announce(
    session: Session,
    *,
    response: Response,
    question_id: str,
    status: CodingStatus,
    effective: list[str] | None,
) -> None:
    """The `coding.changed` event of a coding or consensus written to an answer."""
    outbox.emit(
        session,
        type=EventType.coding_changed,
        survey=response.survey_id,
        site=response.site,
        wave=response.wave,
        response_id=response.id,
        data={
            "response_id": response.id,
            "question": question_id,
            "status": status.value,
            "effective": effective,
        },
    )
