"""The aggregable `answer` rows of a response, derived from its validated answers.

They depend on each question's type, so a survey edit that changes a type rewrites
them (`rewrite_answer_rows`); everything that counts answers in SQL reads these rows.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import Session, col, select

from schemas.responses import Answer, Response
from service.validation import CompiledSurvey


def answer_rows(
    compiled: CompiledSurvey, *, response_pk: int, site: str, wave: str, answers: dict[str, Any]
) -> Iterable[dict[str, Any]]:
    """The aggregable rows of one response: one per answered value (§5 storage)."""
    survey_id = compiled.definition.id
    for qid, value in answers.items():
        kind = compiled.questions[qid].type
        base = {
            "response_pk": response_pk,
            "survey_id": survey_id,
            "question_id": qid,
            "site": site,
            "wave": wave,
            "option": None,
            "number": None,
            "text": None,
        }
        if kind == "multi_choice":
            for option in value:
                yield {**base, "option": option}
        elif kind == "choice":
            yield {**base, "option": value}
        elif kind == "boolean":
            yield {**base, "option": "true" if value else "false"}
        elif kind in ("likert", "number"):
            yield {**base, "number": value}
        else:
            yield {**base, "text": value}


def rewrite_answer_rows(
    session: Session, compiled: CompiledSurvey, *, question_ids: list[str]
) -> None:
    """Derive the rows of these questions again from the stored answers."""
    survey_id = compiled.definition.id
    session.execute(
        delete(Answer).where(
            col(Answer.survey_id) == survey_id, col(Answer.question_id).in_(question_ids)
        )
    )
    wanted = set(question_ids)
    rows = session.exec(
        select(Response.pk, Response.site, Response.wave, Response.answers)
        .where(Response.survey_id == survey_id)
        .execution_options(yield_per=1000)
    )
    batch: list[dict[str, Any]] = []
    for pk, site, wave, answers in rows:
        assert pk is not None
        chosen = {q: v for q, v in answers.items() if q in wanted}
        batch.extend(answer_rows(compiled, response_pk=pk, site=site, wave=wave, answers=chosen))
        if len(batch) >= 5000:
            session.execute(insert(Answer), batch)
            batch = []
    if batch:
        session.execute(insert(Answer), batch)
