"""The demo study: the paper's survey, its Table 3 codebook, 204 synthetic responses and
their double coding, stored through the same validation and storage path as the API, and
coded under the same rules, so the demo proves them."""

from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.codebooks import CodebookIn
from schemas.codings import Coding, CodingCategory, Consensus
from schemas.keys import Role
from schemas.releases import Release, ReleaseIn
from schemas.responses import Response, SubmissionIn
from schemas.surveys import Survey, SurveyDefinition
from service.coding.codebooks import put_codebook
from service.coding.outcome import announce, outcome, set_outcome
from service.errors import Invalid
from service.keys import Principal
from service.releases.publication import publish
from service.responses import check_submission, store_responses
from service.seed.codings import CODER_A, CODER_B, EVALUATOR, seed_codings
from service.seed.dataset import (
    TEXT_QUESTION,
    SeedResponse,
    generate_responses,
    load_codebook,
    load_survey,
)
from service.surveys import create_survey, load_compiled

RELEASE_ID = "bjsw-2017"
# The paper's Tables 1-3, as the release readers see (contract §3).
RELEASE: dict[str, Any] = {
    "id": RELEASE_ID,
    "title": "Lefevre et al. (2017), BJSW: Tables 1-3, mid-stage survey",
    "tables": [
        {"id": "table-1-roles", "kind": "composition", "question": "role"},
        {"id": "table-2-confidence", "kind": "likert", "question": "trust_confidence"},
        {"id": "table-3-trust-actions", "kind": "themes", "question": TEXT_QUESTION},
    ],
}

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
    seeds = generate_responses()
    for seed in seeds:
        data = SubmissionIn.model_validate(seed.as_submission())
        answers, problems = check_submission(compiled, principal=SYSTEM, data=data, received_at=now)
        if problems:
            raise Invalid("the seed data set does not fit its survey", problems)
        items.append((data, answers))
    stored = store_responses(session, compiled, principal=SYSTEM, items=items, received_at=now)
    codebook = CodebookIn.model_validate(load_codebook())
    question = codebook.question or TEXT_QUESTION
    put_codebook(session, compiled, principal=SYSTEM, question_id=question, data=codebook)
    _code_answers(session, definition.id, question, [pk for pk, _ in stored], seeds)
    return definition.id, len(items)


def _code_answers(
    session: Session,
    survey_id: str,
    question_id: str,
    response_pks: list[int],
    seeds: list[SeedResponse],
) -> None:
    """Two coders code every answer and the evaluator resolves where they differ.

    Codings and consensus go in bulk (with their `coding_category` rows, as the coding
    service keeps them); each answer's outcome is then derived by the coding service's own
    rule and recorded once through `set_outcome`, so the statistics that hook in there
    follow.
    """
    codings = seed_codings(seeds)
    now = utcnow()
    where: dict[str, Any] = {"survey_id": survey_id, "question_id": question_id}
    coding_rows: list[dict[str, Any]] = []
    consensus_rows: list[dict[str, Any]] = []
    for c in codings:
        pk = response_pks[c.index]
        for coder, chosen in ((CODER_A, c.a), (CODER_B, c.b)):
            coding_rows.append(
                {
                    **where,
                    "response_pk": pk,
                    "coder": coder,
                    "categories": sorted(chosen),
                    "coded_at": now,
                }
            )
        if c.consensus is not None:
            consensus_rows.append(
                {
                    **where,
                    "response_pk": pk,
                    "categories": sorted(c.consensus),
                    "set_by": EVALUATOR,
                    "set_at": now,
                }
            )
    category_rows: list[dict[str, Any]] = []
    for owner, table, rows in (
        ("coding_id", Coding, coding_rows),
        ("consensus_id", Consensus, consensus_rows),
    ):
        for row_id, row in zip(_insert(session, table, rows), rows, strict=True):
            category_rows += [
                {**where, owner: row_id, "category_id": category} for category in row["categories"]
            ]
    session.execute(insert(CodingCategory), category_rows)
    responses = {
        r.pk: r
        for r in session.exec(
            select(Response).where(col(Response.pk).in_([response_pks[c.index] for c in codings]))
        )
    }
    for c in codings:
        agreed = None if c.consensus is None else frozenset(c.consensus)
        status, effective = outcome([frozenset(c.a), frozenset(c.b)], agreed)
        response = responses[response_pks[c.index]]
        set_outcome(
            session, response=response, question_id=question_id, status=status, effective=effective
        )
        announce(
            session, response=response, question_id=question_id, status=status, effective=effective
        )


def _insert(
    session: Session, table: type[Coding] | type[Consensus], rows: list[dict[str, Any]]
) -> list[int]:
    """Insert the rows in one statement; returns their ids, in the rows' order."""
    if not rows:
        return []
    statement = insert(table).returning(col(table.id), sort_by_parameter_order=True)
    return list(session.execute(statement, rows).scalars())


def publish_demo_release(
    session: Session, survey_id: str, *, min_cell: int, audit_seconds: float
) -> bool:
    """Publish the release `bjsw-2017` unless it exists; True if published now."""
    if session.exec(
        select(Release).where(Release.survey_id == survey_id, Release.id == RELEASE_ID)
    ).first():
        return False
    compiled = load_compiled(session, survey_id=survey_id)
    publish(
        session,
        compiled,
        principal=SYSTEM,
        data=ReleaseIn.model_validate(RELEASE),
        default_min_cell=min_cell,
        audit_seconds=audit_seconds,
    )
    return True
