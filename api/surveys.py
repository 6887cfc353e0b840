"""Survey definitions (contract §4)."""

from fastapi import APIRouter, Depends, Request, status

from api.deps import PrincipalDep, SessionDep, SurveyId, require_json
from api.languages import LangQuery
from api.pagination import DEFAULT, Cursor, Limit
from api.problems import problem_responses
from schemas.base import Page
from schemas.surveys import SurveyDefinition, SurveyPublic
from schemas.texts import localise
from service import languages, surveys

router = APIRouter(prefix="/v1/surveys", tags=["surveys"], responses=problem_responses(401, 403))


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_json)],
    responses=problem_responses(409, 415, 422),
)
def create_survey(
    request: Request, data: SurveyDefinition, session: SessionDep, principal: PrincipalDep
) -> SurveyPublic:
    """Define a survey (admin)."""
    request.state.audit_survey = data.id
    return surveys.to_public(surveys.create_survey(session, principal=principal, data=data))


@router.put(
    "/{survey}",
    dependencies=[Depends(require_json)],
    responses=problem_responses(404, 409, 415, 422),
)
def replace_survey(
    survey: SurveyId, data: SurveyDefinition, session: SessionDep, principal: PrincipalDep
) -> SurveyPublic:
    """Replace a survey's definition (admin); 409 if a stored response would become invalid."""
    row = surveys.replace_survey(session, principal=principal, survey_id=survey, data=data)
    return surveys.to_public(row)


@router.get("", responses=problem_responses(422))
def list_surveys(
    session: SessionDep, principal: PrincipalDep, limit: Limit = DEFAULT, cursor: Cursor = None
) -> Page[SurveyPublic]:
    """List survey definitions (any role but reader)."""
    rows, next_cursor = surveys.list_surveys(
        session, principal=principal, limit=limit, cursor=cursor
    )
    return Page(items=[surveys.to_public(r) for r in rows], next_cursor=next_cursor)


@router.get("/{survey}", responses=problem_responses(404, 422))
def get_survey(
    survey: SurveyId, session: SessionDep, principal: PrincipalDep, lang: LangQuery = None
) -> SurveyPublic:
    """Read one survey definition (any role but reader): as stored, or with `lang` its
    texts as plain strings in that language."""
    found = surveys.to_public(surveys.get_survey(session, principal=principal, survey_id=survey))
    if lang is None:
        return found
    return localise(found, languages.checked(found, lang))
