"""Codebooks of the coded text questions (contract §6)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import CompiledSurveyDep, PrincipalDep, SessionDep, SurveyId, require_json
from api.languages import LangQuery
from api.problems import problem_responses
from schemas.base import SLUG_PATTERN
from schemas.codebooks import CodebookIn, CodebookPublic, CodebookRevisionPublic
from service import languages
from service.coding import codebooks

router = APIRouter(
    prefix="/v1/surveys/{survey}/codebooks/{question}",
    tags=["codebooks"],
    responses=problem_responses(401, 403, 404),
)

QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN, description="A text question's id.")]


@router.put("", dependencies=[Depends(require_json)], responses=problem_responses(415, 422))
def put_codebook(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    data: CodebookIn,
    session: SessionDep,
    principal: PrincipalDep,
) -> CodebookPublic:
    """Create or replace a question's codebook (evaluator, admin)."""
    return codebooks.put_codebook(
        session, compiled, principal=principal, question_id=question, data=data
    )


@router.get("", responses=problem_responses(422))
def get_codebook(
    compiled: CompiledSurveyDep,
    question: QuestionId,
    session: SessionDep,
    principal: PrincipalDep,
    lang: LangQuery = None,
) -> CodebookPublic:
    """Read a question's codebook (evaluator, admin, coder): as stored, or with `lang` its
    texts as plain strings in that language."""
    return codebooks.get_codebook(
        session,
        principal=principal,
        survey_id=compiled.definition.id,
        question_id=question,
        lang=languages.checked(compiled.definition, lang),
    )


@router.get("/history")
def codebook_history(
    survey: SurveyId, question: QuestionId, session: SessionDep, principal: PrincipalDep
) -> list[CodebookRevisionPublic]:
    """Every version of a codebook, with who changed it and when (evaluator, admin)."""
    return codebooks.codebook_history(
        session, principal=principal, survey_id=survey, question_id=question
    )
