"""Alembic is the only way hearme's tables come to exist (STYLE §10): from an empty
database, on both engines, the migrations build exactly the schema the models declare,
and they can be taken down and up again."""

import importlib
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, select
from sqlmodel import SQLModel

import schemas
from api.app import create_app
from schemas.keys import KeyCreate, Role
from service.database import Database, alembic_config, migrations_dir, upgrade
from service.keys import create_key
from service.settings import Settings
from tests.conftest import (
    CODEBOOK_THEMES,
    bearer,
    fresh_pg_database,
    require_pg,
    submission,
    survey_definition,
)

HEARME_TABLES = {"api_key", "survey", "response", "answer", "idempotency_record"}
MIGRATION_FILE = re.compile(r"^\d{4}_\d{2}_\d{2}_[a-z0-9_]+\.py$")

# Every table model, including those of modules added later, is on the metadata.
for _module in pkgutil.iter_modules(schemas.__path__):
    importlib.import_module(f"schemas.{_module.name}")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with nothing in it."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    require_pg()
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # one database per pytest-xdist worker
    yield fresh_pg_database(f"hearme_migrate_test_{worker}" if worker else "hearme_migrate_test")


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _differences(url: str) -> list[object]:
    """What autogenerate would still write: nothing, if the migrations match the models."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def test_upgrade_from_empty_builds_the_models_schema(empty_url: str) -> None:
    assert _tables(empty_url) == set()
    upgrade(Settings(database_url=empty_url))
    tables = _tables(empty_url)
    assert {*HEARME_TABLES, "alembic_version"} <= tables
    assert tables == {*SQLModel.metadata.tables, "alembic_version"}
    assert _revision(empty_url) == _head()
    assert _differences(empty_url) == []


def test_upgrade_at_head_is_a_no_op(empty_url: str) -> None:
    settings = Settings(database_url=empty_url)
    upgrade(settings)
    upgrade(settings)
    assert _revision(empty_url) == _head()
    assert _differences(empty_url) == []


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    upgrade(Settings(database_url=empty_url))
    command.downgrade(alembic_config(empty_url), "base")
    assert _tables(empty_url) <= {"alembic_version"}
    assert _revision(empty_url) is None
    command.upgrade(alembic_config(empty_url), "head")
    assert {*HEARME_TABLES, "alembic_version"} <= _tables(empty_url)
    assert _revision(empty_url) == _head()
    assert _differences(empty_url) == []


def test_one_linear_history_in_dated_files() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert len(scripts.get_heads()) == 1, "merge the branches of the migration history"
    files = sorted(p.name for p in (migrations_dir() / "versions").glob("*.py"))
    assert files
    for name in files:
        assert MIGRATION_FILE.match(name), f"{name}: name migrations YYYY_MM_DD_slug.py"


def test_migration_0010_fills_the_narrow_table_of_a_populated_database(empty_url: str) -> None:
    """Responses stored before 0010 get their narrow rows from the migration itself: taken
    down to 0007 (the table dropped) and up again, the rows are what the service kept."""
    import io
    import json
    import random

    from schemas.keys import Role
    from schemas.stats import stat_row
    from schemas.surveys import SurveyDefinition
    from service.database import Database
    from service.imports import import_responses
    from service.keys import Principal
    from service.surveys import create_survey, load_compiled
    from tests.conftest import survey_definition
    from tests.service.test_stat_cells import random_row

    settings = Settings(database_url=empty_url)
    upgrade(settings)
    admin = Principal(key_id=0, name="migration-test", role=Role.admin, sites=None)
    rng = random.Random(10)
    body = "".join(json.dumps(random_row(rng, "midway")) + "\n" for _ in range(60))
    database = Database(settings)
    try:
        with database.session() as session:
            create_survey(
                session,
                principal=admin,
                data=SurveyDefinition.model_validate(survey_definition()),
            )
        with database.session() as session:
            compiled = load_compiled(session, survey_id="trust", for_write=True)
            imported = import_responses(
                session,
                compiled,
                principal=admin,
                body=io.BytesIO(body.encode()),
                media_type="application/x-ndjson",
                batch_size=25,
            )
            assert imported == 60

        def rows() -> list[tuple[object, ...]]:
            with database.session(write=False) as session:
                # their commit-order number aside: rows older than 0011 have number 0
                kept = [c for c in stat_row.c if c.name != "seq"]
                query = select(*kept).order_by(stat_row.c.response_pk)
                return [tuple(r) for r in session.execute(query)]

        kept = rows()
        assert len(kept) == 60
        database.dispose()
        command.downgrade(alembic_config(empty_url), "0009")
        assert "stat_row" not in _tables(empty_url)
        command.upgrade(alembic_config(empty_url), "head")
        assert rows() == kept
    finally:
        database.dispose()


LANGUAGES_REVISION = "0008"  # adds response.language, codebook texts and release labels


def _strip_languages_key(url: str) -> None:
    """Stored definitions as the schema before languages wrote them: no `languages` key."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            table = SQLModel.metadata.tables["survey"]
            for survey_id, definition in conn.execute(select(table.c.id, table.c.definition)):
                definition.pop("languages", None)
                conn.execute(
                    table.update().where(table.c.id == survey_id).values(definition=definition)
                )
    finally:
        engine.dispose()


def _read_everything(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    survey = "/v1/surveys/trust"
    paths = {
        "survey": survey,
        "responses": f"{survey}/responses",
        "likert": f"{survey}/stats/likert/trust_confidence?by=site",
        "likert_csv": f"{survey}/stats/likert/trust_confidence?format=csv",
        "codebook": f"{survey}/codebooks/trust_actions",
        "themes": f"{survey}/stats/themes/trust_actions",
        "release": f"{survey}/releases/before",
        "release_csv": f"{survey}/releases/before?format=csv",
        "dictionary": f"{survey}/export/dictionary",
        "export": f"{survey}/export?format=csv",
    }
    found = {}
    for name, path in paths.items():
        got = client.get(path, headers=admin)
        assert got.status_code == 200, f"{name}: {got.text}"
        found[name] = got.text if "csv" in path else got.json()
    return found


def test_a_populated_database_of_the_previous_schema_keeps_working_after_languages(
    empty_url: str, tmp_path: Path
) -> None:
    """Stored surveys without languages, their responses, codebooks and releases read
    back unchanged after migration 0008, on both engines; new responses carry a language
    column that is null for the old ones."""
    upgrade(Settings(database_url=empty_url))
    settings = Settings(
        database_url=empty_url,
        webhook_dispatch=False,
        secret_key_file=str(tmp_path / "secret.key"),
    )
    with Database(settings).session() as session:
        _, token = create_key(session, data=KeyCreate(name="admin", role=Role.admin))
    admin = bearer(token)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/surveys", json=survey_definition(), headers=admin).is_success
        codebook = {"themes": CODEBOOK_THEMES}
        put = client.put("/v1/surveys/trust/codebooks/trust_actions", json=codebook, headers=admin)
        assert put.status_code == 200, put.text
        for value in (1, 3, 4, 4, 5, 5, 5):
            body = submission(trust_confidence=value, trust_actions="Listen and take time.")
            assert client.post("/v1/surveys/trust/responses", json=body, headers=admin).is_success
        release = {
            "id": "before",
            "title": "Before languages",
            "tables": [
                {"id": "confidence", "kind": "likert", "question": "trust_confidence"},
                {"id": "themes", "kind": "themes", "question": "trust_actions"},
            ],
        }
        published = client.post("/v1/surveys/trust/releases", json=release, headers=admin)
        assert published.status_code == 201, published.text
        before = _read_everything(client, admin)

    previous = ScriptDirectory.from_config(alembic_config(empty_url)).get_revision(
        LANGUAGES_REVISION
    )
    assert previous is not None
    assert isinstance(previous.down_revision, str)
    command.downgrade(alembic_config(empty_url), previous.down_revision)
    _strip_languages_key(empty_url)
    engine = create_engine(empty_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("response")}
    finally:
        engine.dispose()
    assert "language" not in columns  # a database of the previous schema, populated
    upgrade(settings)  # as `hearme serve` and `hearme db upgrade` do
    assert _revision(empty_url) == _head()

    with TestClient(create_app(settings)) as client:
        after = _read_everything(client, admin)
        assert after == before
        assert all(item["language"] is None for item in after["responses"]["items"])
        assert after["survey"]["languages"] is None
        assert [r["count"] for r in after["likert"]["rows"]] == [1, 0, 1, 2, 3]
        assert next(r["label"] for r in after["likert"]["rows"]) == "Not confident"
        again = client.get("/v1/surveys/trust?lang=en", headers=admin)
        assert again.status_code == 422  # the survey declares no languages
        assert client.post(
            "/v1/surveys/trust/responses", json=submission(), headers=admin
        ).is_success
        assert _read_everything(client, admin)["release"] == after["release"]
