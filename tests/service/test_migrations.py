"""Alembic is the only way hearme's tables come to exist (STYLE §10): from an empty
database, on both engines, the migrations build exactly the schema the models declare,
and they can be taken down and up again."""

import importlib
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

import schemas
from service.database import alembic_config, migrations_dir, upgrade
from service.settings import Settings
from tests.conftest import fresh_pg_database, require_pg

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
                query = stat_row.select().order_by(stat_row.c.response_pk)
                return [tuple(r) for r in session.execute(query)]

        kept = rows()
        assert len(kept) == 60
        database.dispose()
        command.downgrade(alembic_config(empty_url), "0007")
        assert "stat_row" not in _tables(empty_url)
        command.upgrade(alembic_config(empty_url), "head")
        assert rows() == kept
    finally:
        database.dispose()
