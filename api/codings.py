"""Coding text answers, consensus and the coding queue (contract §6)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import PrincipalDep, SessionDep, SurveyId, require_json
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import SLUG_PATTERN, Page
from schemas.codings import CodingIn, CodingPublic, CodingsPublic, QueueItem
from service.coding import codings

router = APIRouter(
    prefix="/v1/surveys/{survey}",
    tags=["codings"],
    responses=problem_responses(401, 403, 404),
)

ResponseId = Annotated[str, Path(max_length=36, description="The response's id.")]
QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="A coded text question's id.")]
CODINGS = "/responses/{response_id}/codings/{question}"


@router.put(CODINGS, dependencies=[Depends(require_json)], responses=problem_responses(415, 422))
def put_coding(
    survey: SurveyId,
    response_id: ResponseId,
    question: QuestionId,
    data: CodingIn,
    session: SessionDep,
    principal: PrincipalDep,
) -> CodingPublic:
    """Store the calling key's coding of an answer, replacing its earlier one (coder,
    evaluator, admin)."""
    return codings.put_coding(
        session,
        principal=principal,
        survey_id=survey,
        response_id=response_id,
        question_id=question,
        data=data,
    )


@router.get(CODINGS)
def get_codings(
    survey: SurveyId,
    response_id: ResponseId,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
) -> CodingsPublic:
    """An answer's codings, consensus, effective set and status (coder, evaluator, admin).

    Coding is blind: a coder key sees only its own coding, and the consensus, effective
    set and status as if its coding were the only one.
    """
    return codings.get_codings(
        session,
        principal=principal,
        survey_id=survey,
        response_id=response_id,
        question_id=question,
    )


@router.put(
    CODINGS + "/consensus",
    dependencies=[Depends(require_json)],
    responses=problem_responses(415, 422),
)
def put_consensus(
    survey: SurveyId,
    response_id: ResponseId,
    question: QuestionId,
    data: CodingIn,
    session: SessionDep,
    principal: PrincipalDep,
) -> CodingsPublic:
    """Set the agreed set of an answer, which becomes its effective set (evaluator, admin)."""
    return codings.put_consensus(
        session,
        principal=principal,
        survey_id=survey,
        response_id=response_id,
        question_id=question,
        data=data,
    )


@router.delete(CODINGS + "/consensus", status_code=204)
def delete_consensus(
    survey: SurveyId,
    response_id: ResponseId,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
) -> Response:
    """Withdraw an answer's consensus; its status follows its coders again (evaluator,
    admin)."""
    codings.delete_consensus(
        session,
        principal=principal,
        survey_id=survey,
        response_id=response_id,
        question_id=question,
    )
    return Response(status_code=204)


@router.get("/codebooks/{question}/queue", responses=problem_responses(422))
def coding_queue(
    survey: SurveyId,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
    coded_by_other: Annotated[
        bool, Query(description="Only answers another coder has coded (double coding).")
    ] = False,
    limit: Limit = DEFAULT,
    cursor: Cursor = None,
) -> Page[QueueItem]:
    """The next answers the calling key has not coded, oldest first, within its sites
    (coder, evaluator, admin)."""
    items, next_cursor = codings.queue(
        session,
        principal=principal,
        survey_id=survey,
        question_id=question,
        coded_by_other=coded_by_other,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)
