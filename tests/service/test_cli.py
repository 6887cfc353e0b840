"""The `hearme` command (contract §3) and the demo loader behind `hearme demo`.

The CLI runs in-process with typer's CliRunner against an SQLite file named by
HEARME_DATABASE_URL; nothing here starts a server.
"""

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text
from sqlmodel import Session
from typer.testing import CliRunner, Result

import api.cli
from api.app import create_app
from service.database import Database
from service.demo import load_demo
from service.seed.dataset import SURVEY_ID
from service.settings import Settings
from tests.conftest import bearer

runner = CliRunner()

# The paper's Table 1 (roles) and Table 2 (confidence), n = 204.
TABLE_1 = {
    "la_social_work": 46,
    "police": 38,
    "youth_interventions": 24,
    "education": 19,
    "health": 18,
    "family_support": 15,
    "senior_management": 10,
    "other": 34,
}
TABLE_2 = {1: 17, 2: 53, 3: 53, 4: 73, 5: 8}


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """HEARME_DATABASE_URL points at a file that does not exist yet."""
    url = f"sqlite:///{tmp_path / 'cli' / 'hearme.db'}"
    monkeypatch.setenv("HEARME_DATABASE_URL", url)
    return url


def invoke(*args: str) -> Result:
    return runner.invoke(api.cli.app, list(args))


def last_line(result: Result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_db_upgrade_on_an_empty_database(db_file: str) -> None:
    result = invoke("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert "database at head" in result.stdout
    engine = create_engine(db_file)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"api_key", "survey", "response", "answer", "alembic_version"} <= tables
    again = invoke("db", "upgrade")
    assert again.exit_code == 0, again.output


def test_keys_create_prints_a_working_key(db_file: str) -> None:
    result = invoke("keys", "create", "--name", "x", "--role", "evaluator", "--site", "site-1")
    assert result.exit_code == 0, result.output
    token = last_line(result)
    assert token.startswith("hm_")
    assert " " not in token
    assert "evaluator" in result.stdout
    assert "site-1" in result.stdout

    with TestClient(create_app(Settings(database_url=db_file))) as client:
        listed = client.get("/v1/surveys", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        assert listed.json() == {"items": [], "next_cursor": None}
        # An evaluator is not an admin.
        keys = client.get("/v1/keys", headers=bearer(token))
        assert keys.status_code == 403

    # Stored hashed, never as given.
    engine = create_engine(db_file)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT key_hash, role, sites FROM api_key")).one()
    finally:
        engine.dispose()
    assert row.key_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.role == "evaluator"
    assert token not in str(tuple(row))


def test_keys_create_with_several_sites_and_none(db_file: str) -> None:
    bound = invoke(
        "keys", "create", "--name", "s", "--role", "submitter", "--site", "a", "--site", "b"
    )
    assert bound.exit_code == 0, bound.output
    unbound = invoke("keys", "create", "--name", "root", "--role", "admin")
    assert unbound.exit_code == 0, unbound.output
    assert "all sites" in unbound.stdout
    with TestClient(create_app(Settings(database_url=db_file))) as client:
        keys = client.get("/v1/keys", headers=bearer(last_line(unbound)))
    assert keys.status_code == 200
    sites = {k["name"]: k["sites"] for k in keys.json()}
    assert sites == {"s": ["a", "b"], "root": None}


def test_keys_create_refuses_a_duplicate_name(db_file: str) -> None:
    first = invoke("keys", "create", "--name", "x", "--role", "evaluator")
    assert first.exit_code == 0, first.output
    token = last_line(first)
    second = invoke("keys", "create", "--name", "x", "--role", "admin")
    assert second.exit_code != 0
    assert "already exists" in second.stderr
    assert "'x'" in second.stderr
    assert "Traceback" not in second.output
    assert token not in second.output
    assert "hm_" not in second.stdout  # no second key was handed out


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "y", "--role", "superuser"],
        ["--name", "has space", "--role", "admin"],
        ["--role", "admin"],
    ],
)
def test_keys_create_refuses_bad_options(db_file: str, args: list[str]) -> None:
    result = invoke("keys", "create", *args)
    assert result.exit_code != 0
    assert "hm_" not in result.stdout


def test_demo_command_loads_once_and_prints_an_admin_key(
    db_file: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[Any, ...]] = []
    monkeypatch.setattr(api.cli, "_serve", lambda *args: served.append(args))
    first = invoke("demo", "--port", "8123")
    assert first.exit_code == 0, first.output
    assert "204 responses loaded" in first.stdout
    second = invoke("demo")
    assert second.exit_code == 0, second.output
    assert "already loaded" in second.stdout
    assert [args[1:] for args in served] == [("127.0.0.1", 8123, 1), ("127.0.0.1", 8000, 1)]
    with TestClient(create_app(Settings(database_url=db_file))) as client:
        for result in (first, second):
            got = client.get(f"/v1/surveys/{SURVEY_ID}", headers=bearer(last_line(result)))
            assert got.status_code == 200, got.text
        page = client.get(
            f"/v1/surveys/{SURVEY_ID}/responses",
            params={"limit": 1000},
            headers=bearer(last_line(second)),
        )
    assert page.status_code == 200
    assert len(page.json()["items"]) == 204


def _counts(session: Session, sql: str) -> dict[Any, int]:
    rows = session.connection().execute(text(sql), {"survey": SURVEY_ID}).all()
    return {value: count for value, count in rows}


def test_load_demo_reproduces_the_papers_tables(database: Database) -> None:
    with database.session() as session:
        survey_id, stored = load_demo(session)
    assert survey_id == SURVEY_ID
    assert stored == 204
    with database.session(write=False) as session:
        responses = session.connection().execute(
            text("SELECT COUNT(*) FROM response WHERE survey_id = :survey"), {"survey": SURVEY_ID}
        )
        assert responses.scalar_one() == 204
        roles = _counts(
            session,
            "SELECT option, COUNT(*) FROM answer"
            " WHERE survey_id = :survey AND question_id = 'role' GROUP BY option",
        )
        assert roles == TABLE_1
        confidence = _counts(
            session,
            "SELECT number, COUNT(*) FROM answer"
            " WHERE survey_id = :survey AND question_id = 'trust_confidence' GROUP BY number",
        )
        assert {int(value): count for value, count in confidence.items()} == TABLE_2
        assert all(float(value).is_integer() for value in confidence)
        answered = session.connection().execute(
            text(
                "SELECT COUNT(*) FROM answer WHERE survey_id = :survey"
                " AND question_id = 'trust_actions' AND text IS NOT NULL AND TRIM(text) <> ''"
            ),
            {"survey": SURVEY_ID},
        )
        assert answered.scalar_one() == 202


def test_load_demo_twice_stores_nothing_new(database: Database) -> None:
    with database.session() as session:
        assert load_demo(session) == (SURVEY_ID, 204)
    with database.session() as session:
        assert load_demo(session) == (SURVEY_ID, 0)
    with database.session(write=False) as session:
        count = session.connection().execute(text("SELECT COUNT(*) FROM response"))
        assert count.scalar_one() == 204
        answers = session.connection().execute(
            text("SELECT COUNT(DISTINCT response_pk) FROM answer")
        )
        assert answers.scalar_one() == 204
