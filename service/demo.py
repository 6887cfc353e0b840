"""The demo study: the paper's survey, its Table 3 codebook and 204 synthetic responses,
stored through the same validation and storage path as the API, so the demo proves it."""

from sqlmodel import Session

from schemas.base import utcnow
from schemas.codebooks import CodebookIn
from schemas.keys import Role
from schemas.responses import SubmissionIn
from schemas.surveys import Survey, SurveyDefinition
from service.codebooks import put_codebook
from service.errors import Invalid
from service.keys import Principal
from service.responses import check_submission, store_responses
from service.seed.dataset import TEXT_QUESTION, generate_responses, load_codebook, load_survey
from service.surveys import create_survey, load_compiled

SYSTEM = Principal(key_id=0, name="hearme-demo", role=Role.admin, sites=None)


def load_demo(session: Session) -> tuple[str, int]:
    """Store the seed survey and its responses unless the survey is already there.

    Returns the survey id and how many responses were stored now (0 if already loaded).
    """
    definition = SurveyDefinition.model_validate(load_survey())
    if session.get(Survey, definition.id) is not None:
        return definition.id, 0
    create_survey(session, principal=SYSTEM, data=definition)
    compiled = load_compiled(session, survey_id=definition.id)
    now = utcnow()
    items = []
    for seed in generate_responses():
        data = SubmissionIn.model_validate(seed.as_submission())
        answers, problems = check_submission(compiled, principal=SYSTEM, data=data, received_at=now)
        if problems:
            raise Invalid("the seed data set does not fit its survey", problems)
        items.append((data, answers))
    store_responses(session, compiled, principal=SYSTEM, items=items, received_at=now)
    codebook = CodebookIn.model_validate(load_codebook())
    question = codebook.question or TEXT_QUESTION
    put_codebook(session, compiled, principal=SYSTEM, question_id=question, data=codebook)
    return definition.id, len(items)
