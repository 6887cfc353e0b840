"""The outcome of a coded answer (contract §6): the pure status rule, and `set_outcome`, the
one writer of `coding_outcome` and `effective_category`, on both engines."""

from typing import Any

import pytest
from sqlmodel import col, select

from schemas.codings import CodingOutcome, CodingStatus, EffectiveCategory
from schemas.keys import Role
from schemas.responses import Response, SubmissionIn
from schemas.surveys import SurveyDefinition
from service.coding.outcome import outcome, set_outcome
from service.database import Database
from service.keys import Principal
from service.submissions import submit
from service.surveys import create_survey, load_compiled
from tests.conftest import submission, survey_definition

ADMIN = Principal(key_id=0, name="admin", role=Role.admin, sites=None)


def fs(*categories: str) -> frozenset[str]:
    return frozenset(categories)


@pytest.mark.parametrize(
    ("codings", "consensus", "expected"),
    [
        ([], None, (CodingStatus.uncoded, None)),
        ([fs("b", "a")], None, (CodingStatus.single, ["a", "b"])),
        ([fs()], None, (CodingStatus.single, [])),
        ([fs("a", "b"), fs("b", "a")], None, (CodingStatus.agreed, ["a", "b"])),
        ([fs(), fs(), fs()], None, (CodingStatus.agreed, [])),
        ([fs("a"), fs("a", "b")], None, (CodingStatus.disputed, None)),
        ([fs("a"), fs("a"), fs("b")], None, (CodingStatus.disputed, None)),
        ([fs("a"), fs()], None, (CodingStatus.disputed, None)),
        ([fs("a"), fs("b")], fs("c", "a"), (CodingStatus.resolved, ["a", "c"])),
        ([fs("a"), fs("a")], fs("b"), (CodingStatus.resolved, ["b"])),
        ([fs("a")], fs(), (CodingStatus.resolved, [])),
        ([], fs("a"), (CodingStatus.resolved, ["a"])),
    ],
)
def test_outcome(
    codings: list[frozenset[str]],
    consensus: frozenset[str] | None,
    expected: tuple[CodingStatus, list[str] | None],
) -> None:
    assert outcome(codings, consensus) == expected


@pytest.fixture
def response(database: Database) -> Response:
    with database.session() as session:
        create_survey(
            session, principal=ADMIN, data=SurveyDefinition.model_validate(survey_definition())
        )
        compiled = load_compiled(session, survey_id="trust")
        body: dict[str, Any] = {**submission(trust_actions="Listen."), "site": "site-2"}
        stored, _ = submit(
            session, compiled, principal=ADMIN, data=SubmissionIn.model_validate(body)
        )
    with database.session() as session:
        row = session.exec(select(Response).where(Response.id == stored.id)).one()
    return row


def stored(database: Database, response: Response) -> tuple[Any, list[tuple[str, ...]]]:
    with database.session(write=False) as session:
        row = session.exec(
            select(CodingOutcome).where(CodingOutcome.response_pk == response.pk)
        ).first()
        categories = session.exec(
            select(EffectiveCategory)
            .where(EffectiveCategory.response_pk == response.pk)
            .order_by(col(EffectiveCategory.category_id))
        ).all()
        return (
            None
            if row is None
            else (row.question_id, row.survey_id, row.site, row.wave, row.status, row.effective),
            [(c.question_id, c.category_id, c.survey_id, c.site, c.wave) for c in categories],
        )


def put(database: Database, response: Response, status: str | None, effective: Any) -> None:
    with database.session() as session:
        set_outcome(
            session,
            response=response,
            question_id="trust_actions",
            status=status,
            effective=effective,
        )


def test_set_outcome_inserts_updates_and_removes(database: Database, response: Response) -> None:
    where = ("trust_actions", "trust", "site-2", "midway")

    def cats(*ids: str) -> list[tuple[str, ...]]:
        return [("trust_actions", c, "trust", "site-2", "midway") for c in ids]

    put(database, response, None, None)
    assert stored(database, response) == (None, [])

    put(database, response, "single", ["time", "rapport"])
    assert stored(database, response) == (
        (*where, "single", ["rapport", "time"]),
        cats("rapport", "time"),
    )

    put(database, response, "agreed", ["rapport", "time"])
    assert stored(database, response) == (
        (*where, "agreed", ["rapport", "time"]),
        cats("rapport", "time"),
    )

    put(database, response, "resolved", ["listening", "rapport"])
    assert stored(database, response) == (
        (*where, "resolved", ["listening", "rapport"]),
        cats("listening", "rapport"),
    )

    put(database, response, "disputed", None)
    assert stored(database, response) == ((*where, "disputed", None), [])

    put(database, response, "single", [])
    assert stored(database, response) == ((*where, "single", []), [])

    put(database, response, "single", ["advocacy"])
    assert stored(database, response) == ((*where, "single", ["advocacy"]), cats("advocacy"))

    put(database, response, CodingStatus.uncoded, None)
    assert stored(database, response) == (None, [])


def test_a_disputed_effective_set_is_sql_null(database: Database, response: Response) -> None:
    """Statistics ask `effective IS NULL`; a JSON 'null' would not match."""
    put(database, response, "disputed", None)
    with database.session(write=False) as session:
        found = session.exec(
            select(CodingOutcome.status).where(col(CodingOutcome.effective).is_(None))
        ).all()
    assert found == ["disputed"]


def test_set_outcome_is_idempotent(database: Database, response: Response) -> None:
    put(database, response, "agreed", ["a", "b"])
    before = stored(database, response)
    put(database, response, "agreed", ["b", "a"])
    assert stored(database, response) == before


def test_outcome_rows_go_with_their_response(database: Database, response: Response) -> None:
    """The foreign keys cascade, on SQLite too (foreign keys are on)."""
    put(database, response, "single", ["a"])
    with database.session() as session:
        session.delete(session.get(Response, response.pk))
    assert stored(database, response) == (None, [])
