"""Erasing a response (contract §5) with everything derived from it.

Its own module because it reaches across the others: the codings and outcomes of
`service.coding`, the summary cells of `service.stats`, the answer rows and the response
itself, and the answers in the feed (its `response.created` event is scrubbed; a
`response.erased` event tells every follower). The idempotency record that produced it
keeps its key (its `response_pk` is set null by the foreign key), so a retry of the
erased submission is a 409, not a new copy.
"""

from sqlalchemy import delete
from sqlmodel import Session, col

from schemas.events import EventType
from schemas.responses import Answer, Response
from service.coding.codings import forget_response
from service.events import outbox
from service.keys import Principal
from service.permissions import Action, require
from service.responses import visible_response
from service.stats import cells
from service.stats.cells import ANSWER_SOURCES
from service.surveys import load_compiled


def erase_response(
    session: Session, *, principal: Principal, survey_id: str, response_id: str
) -> None:
    """Erase a response with everything derived from it (answers, codings, outcomes)."""
    require(principal, Action.erase_responses)
    response = visible_response(session, principal, survey_id=survey_id, response_id=response_id)
    forget_response(session, response=response)
    compiled = load_compiled(session, survey_id=survey_id)
    assert response.pk is not None
    cells.apply(session, compiled, sign=-1, response_pks=[response.pk], sources=ANSWER_SOURCES)
    session.execute(delete(Answer).where(col(Answer.response_pk) == response.pk))
    session.execute(delete(Response).where(col(Response.pk) == response.pk))
    outbox.scrub_response(session, response_id=response.id)
    outbox.emit(
        session,
        type=EventType.response_erased,
        survey=survey_id,
        site=response.site,
        wave=response.wave,
        response_id=response.id,
        data={"id": response.id},
    )
