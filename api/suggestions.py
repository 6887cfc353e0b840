"""Coding suggestions from the codebook's keywords (issue 4, part 5)."""

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import PrincipalDep, SessionDep, SurveyId
from api.problems import problem_responses
from schemas.base import SLUG_PATTERN
from schemas.suggestions import Suggestion
from service.coding import suggestions

router = APIRouter(
    prefix="/v1/surveys/{survey}/responses/{response_id}/codings/{question}",
    tags=["codings"],
    responses=problem_responses(401, 403, 404),
)

ResponseId = Annotated[str, Path(max_length=36, description="The response's id.")]
QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="A coded text question's id.")]


@router.get("/suggestions")
def get_suggestions(
    survey: SurveyId,
    response_id: ResponseId,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
) -> list[Suggestion]:
    """The categories whose keywords occur in the answer, with where, for a coder to confirm
    (coder, evaluator, admin; a site-bound key only for its sites).

    Matching ignores case and inflection ("listen" finds "listened"); a keyword of several
    words matches them as a phrase. Offsets count Unicode code points of the stored answer.
    Suggestions are computed on each call, never stored and never counted as codings; a
    blank answer has none.
    """
    return suggestions.suggest_codings(
        session,
        principal=principal,
        survey_id=survey,
        response_id=response_id,
        question_id=question,
    )
