"""Group commit (`service.submissions`): concurrent submissions stored in one transaction,
each with its own outcome, on both engines, by a worker thread and by the writer process
that `hearme serve` gives each worker (`service.writer`)."""

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from sqlalchemy import event, func, text
from sqlmodel import select

from schemas.keys import KeyCreate, Role
from schemas.responses import Answer, IdempotencyRecord, Response, SubmissionIn
from schemas.stats import StatCell
from schemas.surveys import SurveyDefinition
from service.database import Database
from service.errors import Conflict, DomainError
from service.keys import Principal, create_key
from service.settings import Settings
from service.submissions import GroupCommit, Pending, Stored, prepare
from service.surveys import create_survey, load_compiled, replace_survey
from service.writer import WriterProcess
from tests.conftest import submission, survey_definition

WRITER = [sys.executable, "-m", "api.writer"]


@pytest.fixture(params=["thread", "process"])
def group(
    request: pytest.FixtureRequest, database: Database, settings: Settings
) -> Iterator[GroupCommit]:
    """A group commit storing in a thread of this process, or in a writer process."""
    if request.param == "thread":
        yield GroupCommit(database)
        return
    writer = WriterProcess(settings, WRITER)
    writer.start()
    try:
        yield GroupCommit(database, store=writer.store)
    finally:
        writer.stop()


def _id(stored: Stored) -> str:
    return str(orjson.loads(stored.body)["id"])


@pytest.fixture
def principal(database: Database) -> Principal:
    with database.session() as session:
        key, _ = create_key(session, data=KeyCreate(name="submitter", role=Role.admin))
        assert key.id is not None
        admin = Principal(key_id=key.id, name=key.name, role=Role.admin, sites=None)
        create_survey(
            session, principal=admin, data=SurveyDefinition.model_validate(survey_definition())
        )
    return admin


def _prepare(
    database: Database, principal: Principal, body: dict[str, Any], key: str | None = None
) -> Pending:
    with database.session(write=False) as session:
        compiled = load_compiled(session, survey_id="trust")
    return prepare(
        compiled,
        principal=principal,
        data=SubmissionIn.model_validate(body),
        idempotency_key=key,
    )


async def _together(group: GroupCommit, items: list[Pending]) -> list[Any]:
    """Submit all at once: they are queued before the writer's first turn, so one batch."""
    return await asyncio.gather(*(group.submit(i) for i in items), return_exceptions=True)


def _commits(database: Database) -> list[int]:
    commits: list[int] = []
    event.listen(database.engine, "commit", lambda _conn: commits.append(1))
    return commits


def _count(database: Database, model: Any) -> int:
    with database.session(write=False) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def _counted(database: Database) -> int:
    """Responses counted by the cells (the survey-wide totals)."""
    with database.session(write=False) as session:
        total = session.exec(
            select(func.sum(StatCell.n)).where(
                StatCell.question_id == "", StatCell.by_question == ""
            )
        ).one()
    return int(total or 0)


def test_a_batch_is_one_commit_with_one_outcome_each(
    database: Database, principal: Principal, group: GroupCommit
) -> None:
    items = [
        _prepare(database, principal, submission(trust_actions=f"Answer {i}.")) for i in range(6)
    ]
    same = submission(trust_actions="Keyed.")
    items += [
        _prepare(database, principal, same, key="k-1"),
        _prepare(database, principal, same, key="k-1"),  # the same key and body: a replay
        _prepare(database, principal, submission(), key="k-1"),  # the same key, another body
    ]
    commits = _commits(database)
    outcomes = asyncio.run(_together(group, items))
    if group.store == group.store_in_thread:  # (the writer process has its own engine)
        assert len(commits) == 1
    created = [o for o in outcomes[:7] if not isinstance(o, BaseException)]
    assert [c for _, c in created] == [True] * 7
    replay = outcomes[7]
    assert not isinstance(replay, BaseException)
    assert replay == Stored(created[6].body, False)
    assert isinstance(outcomes[8], Conflict)
    assert _count(database, Response) == 7
    assert _count(database, IdempotencyRecord) == 1
    assert _counted(database) == 7
    with database.session(write=False) as session:
        record = session.exec(select(IdempotencyRecord)).one()
        stored = session.exec(select(Response).where(Response.pk == record.response_pk)).one()
    assert stored.id == _id(created[6])
    if database.dialect == "postgresql":  # one transaction wrote all seven rows
        with database.session(write=False) as session:
            writers = session.execute(text("SELECT count(DISTINCT xmin::text) FROM response"))
            assert writers.scalar_one() == 1


def test_a_key_used_before_is_replayed_from_the_database(
    database: Database, principal: Principal, group: GroupCommit
) -> None:
    body = submission(trust_actions="Once.")
    (first,) = asyncio.run(_together(group, [_prepare(database, principal, body, key="k")]))
    again = asyncio.run(
        _together(
            group,
            [
                _prepare(database, principal, body, key="k"),
                _prepare(database, principal, submission(), key="k"),
                _prepare(database, principal, submission()),
            ],
        )
    )
    assert again[0] == Stored(first.body, False)
    assert isinstance(again[1], Conflict)
    assert not isinstance(again[2], BaseException)
    assert again[2][1] is True
    assert _count(database, Response) == 2


def test_a_poisoned_item_fails_alone(
    database: Database, principal: Principal, group: GroupCommit
) -> None:
    """An item the database refuses (its key no longer exists: a foreign key violation)
    fails the batch's transaction; its neighbours are then stored one by one."""
    good = [_prepare(database, principal, submission(trust_actions=f"Fine {i}.")) for i in range(3)]
    ghost = Principal(key_id=999_999, name="ghost", role=Role.admin, sites=None)
    bad = _prepare(database, ghost, submission(), key="ghost-key")
    outcomes = asyncio.run(_together(group, [good[0], bad, good[1], good[2]]))
    assert isinstance(outcomes[1], Exception)
    assert all(not isinstance(o, BaseException) and o[1] for o in (outcomes[0], *outcomes[2:]))
    assert _count(database, Response) == 3
    assert _count(database, Answer) == 9  # role, trust_confidence, trust_actions each
    assert _counted(database) == 3


def test_an_item_validated_against_an_older_definition_is_checked_again(
    database: Database, principal: Principal, group: GroupCommit
) -> None:
    still_valid = _prepare(database, principal, submission())
    now_invalid = _prepare(database, principal, {**submission(), "site": "site-2"})
    with database.session() as session:  # site-2 goes before the batch is stored
        sites = [{"id": "site-1", "name": "Site 1"}]
        replace_survey(
            session,
            principal=principal,
            survey_id="trust",
            data=SurveyDefinition.model_validate(survey_definition(sites=sites)),
        )
    outcomes = asyncio.run(_together(group, [still_valid, now_invalid]))
    assert not isinstance(outcomes[0], BaseException)
    assert outcomes[0][1] is True
    assert isinstance(outcomes[1], DomainError)
    assert _count(database, Response) == 1


def test_a_stopped_writer_process_exits_on_its_own(
    database: Database, principal: Principal, settings: Settings
) -> None:
    """Stopping closes the writer's socket: it stores what it was sent, sees the end and
    exits 0 (a writer that never saw it would be killed after STOP_TIMEOUT)."""
    writer = WriterProcess(settings, WRITER)
    writer.start()
    group = GroupCommit(database, store=writer.store)
    (stored,) = asyncio.run(_together(group, [_prepare(database, principal, submission())]))
    assert isinstance(stored, Stored)
    assert writer.stop() == 0
    assert _count(database, Response) == 1
