"""Agreement between two coders of a question, and their discrepancies (contract §6)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from api.deps import PrincipalDep, SessionDep, SurveyId
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.agreement import AgreementPublic, Discrepancy
from schemas.base import SLUG_PATTERN, Page
from service.coding import pairs

router = APIRouter(
    prefix="/v1/surveys/{survey}/codebooks/{question}",
    tags=["codings"],
    responses=problem_responses(401, 403, 404, 422),
)

QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="A coded text question's id.")]
Coders = Annotated[
    str,
    Query(
        max_length=401,
        description="The two coders (key names) to compare, comma-separated: `a,b`.",
        examples=["coder-a,coder-b"],
    ),
]


@router.get("/agreement")
def coder_agreement(
    survey: SurveyId,
    question: QuestionId,
    coders: Coders,
    session: SessionDep,
    principal: PrincipalDep,
) -> AgreementPublic:
    """Per-category and overall agreement of two coders over the answers both coded, within
    the caller's sites (evaluator, admin)."""
    return pairs.coder_agreement(
        session, principal=principal, survey_id=survey, question_id=question, coders=coders
    )


@router.get("/discrepancies")
def coder_discrepancies(
    survey: SurveyId,
    question: QuestionId,
    coders: Coders,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Limit = DEFAULT,
    cursor: Cursor = None,
) -> Page[Discrepancy]:
    """The answers two coders coded with different sets, oldest first, each with its
    consensus or null, within the caller's sites (evaluator, admin)."""
    items, next_cursor = pairs.discrepancies(
        session,
        principal=principal,
        survey_id=survey,
        question_id=question,
        coders=coders,
        limit=limit,
        cursor=cursor,
    )
    return Page(items=items, next_cursor=next_cursor)
