"""Fixtures shared by every test: a migrated database on each engine, the app, keys.

Every test that takes `db_url` (directly or through `client`) runs twice, on SQLite and
on PostgreSQL. Databases are migrated once per session with Alembic and emptied after
each test. PostgreSQL that cannot be reached skips its half locally and fails under CI.
"""

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import schemas.audit
import schemas.codebooks
import schemas.codings
import schemas.events
import schemas.keys
import schemas.releases
import schemas.responses
import schemas.stats
import schemas.surveys  # noqa: F401  (the tables to empty)
from api.app import create_app
from schemas.keys import KeyCreate, Role
from service.database import Database, upgrade
from service.keys import create_key
from service.settings import Settings

PG_ADMIN_URL = os.environ.get(
    "HEARME_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
ENGINES = ["sqlite", "postgresql"]


def _run_name() -> str:
    """Unique per test process, so concurrent runs never share a database."""
    return f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{os.getpid()}"


def fresh_pg_database(name: str) -> str:
    """Create (or re-create) an empty PostgreSQL database; returns its URL."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(name: str) -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def pg_available() -> str | None:
    """None if PostgreSQL answers, else the reason."""
    engine = create_engine(PG_ADMIN_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    return None


def require_pg() -> None:
    reason = pg_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"PostgreSQL is required under CI=true and is not reachable: {reason}")
    pytest.skip(f"PostgreSQL not reachable: {reason}")


@pytest.fixture(scope="session")
def _migrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], str]]:
    """Migrate each engine's test database once per session, on first use."""
    urls: dict[str, str] = {}
    pg_name = f"hearme_test_{_run_name()}"

    def get(engine: str) -> str:
        if engine not in urls:
            if engine == "sqlite":
                url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hearme.db'}"
            else:
                require_pg()
                url = fresh_pg_database(pg_name)
            upgrade(Settings(database_url=url))
            urls[engine] = url
        return urls[engine]

    yield get
    if "postgresql" in urls:
        drop_pg_database(pg_name)


def empty_all_tables(url: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = [t.name for t in SQLModel.metadata.sorted_tables]
            if engine.dialect.name == "postgresql":
                names = ", ".join(f'"{t}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in reversed(tables):
                    conn.execute(text(f'DELETE FROM "{table}"'))
    finally:
        engine.dispose()


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, _migrated: Callable[[str], str]) -> Iterator[str]:
    url = _migrated(request.param)
    yield url
    empty_all_tables(url)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The role matrix makes far more than 20 failed authentications a minute on purpose.
    # No webhook dispatcher in the app unless a test asks for one (tests/api/test_webhooks):
    # a webhook made elsewhere (the role matrix) must never send traffic anywhere.
    return Settings(
        database_url=db_url,
        auth_failure_limit=100_000,
        webhook_dispatch=False,
        secret_key_file=str(tmp_path / "hearme-secret.key"),
        # In-process apps store submissions in a thread; the served app's writer process
        # is tested in tests/server and tests/service/test_group_commit.py.
        submit_writer="thread",
    )


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings)
    yield database
    database.dispose()


@pytest.fixture
def client(settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(settings, database=database)) as client:
        yield client


MakeKey = Callable[..., str]


@pytest.fixture
def make_key(database: Database) -> MakeKey:
    """make_key(role, sites=None, name=None) -> the bearer token of a new key."""
    counter = iter(range(1, 10_000))

    def make(role: Role | str, sites: list[str] | None = None, name: str | None = None) -> str:
        role = Role(role)
        with database.session() as session:
            _, token = create_key(
                session,
                data=KeyCreate(
                    name=name or f"{role.value}-{next(counter)}", role=role, sites=sites
                ),
            )
        return token

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin(make_key: MakeKey) -> dict[str, str]:
    return bearer(make_key("admin", name="admin"))


def survey_definition(**changes: Any) -> dict[str, Any]:
    """A survey with every question type, open waves, two sites."""
    definition: dict[str, Any] = {
        "id": "trust",
        "title": "Professionals' survey",
        "sites": [{"id": "site-1", "name": "Site 1"}, {"id": "site-2", "name": "Site 2"}],
        "waves": [
            {"id": "midway", "name": "Mid-stage survey", "opens_at": None, "closes_at": None},
            {
                "id": "final",
                "name": "Final survey",
                "opens_at": "2016-07-01T00:00:00Z",
                "closes_at": "2016-10-31T23:59:59Z",
            },
        ],
        "questions": [
            {
                "id": "role",
                "type": "choice",
                "text": "Your role",
                "required": True,
                "options": [
                    {"value": "police", "label": "Police"},
                    {"value": "health", "label": "Health services"},
                    {"value": "other", "label": "Other"},
                ],
            },
            {
                "id": "agencies",
                "type": "multi_choice",
                "text": "Agencies you work with",
                "options": [
                    {"value": "police", "label": "Police"},
                    {"value": "school", "label": "School"},
                    {"value": "ngo", "label": "Charity"},
                ],
            },
            {
                "id": "trust_confidence",
                "type": "likert",
                "text": "How confident are you that a child would trust you?",
                "required": True,
                "scale": [
                    {"value": 1, "label": "Not confident"},
                    {"value": 2, "label": "Somewhat unconfident"},
                    {"value": 3, "label": "Neither confident or unconfident"},
                    {"value": 4, "label": "Confident"},
                    {"value": 5, "label": "Very confident"},
                ],
            },
            {"id": "years", "type": "number", "text": "Years in post", "min": 0, "max": 50},
            {"id": "cases", "type": "number", "text": "Cases", "min": 0, "integer": True},
            {"id": "involved", "type": "boolean", "text": "Directly involved in a case?"},
            {
                "id": "trust_actions",
                "type": "text",
                "text": "What do you need to do?",
                "max_length": 200,
            },
        ],
    }
    definition.update(changes)
    return definition


def submission(**answers: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site": "site-1",
        "wave": "midway",
        "answers": {"role": "police", "trust_confidence": 4, **answers},
    }
    return body


@pytest.fixture
def survey(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    response = client.post("/v1/surveys", json=survey_definition(), headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


CODEBOOK_THEMES: list[dict[str, Any]] = [
    {
        "id": "relationship",
        "label": "Relationship-based practice",
        "domain": "being",
        "categories": [
            {"id": "rapport", "label": "Building rapport", "keywords": ["rapport"]},
            {"id": "time", "label": "Spending time", "keywords": ["time"]},
        ],
    },
    {
        "id": "child_centred",
        "label": "Child-centred practice",
        "domain": "doing",
        "categories": [
            {"id": "listening", "label": "Listening", "keywords": ["listen"]},
            {"id": "honest", "label": "Being honest", "origin": "inductive"},
        ],
    },
]
"""A small two-theme codebook for the `trust_actions` question of `survey_definition`."""

PROBLEM_JSON = "application/problem+json"


def assert_problem(response: Any, status: int, *locs: list[str | int]) -> dict[str, Any]:
    """`response` is a problem+json of `status`, without a stack trace; on a 422, `errors`
    is not empty and names each of `locs` by its path. Returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    if status == 422:
        named = [error["loc"] for error in body["errors"]]
        assert named, response.text
        for loc in locs:
            assert loc in named, f"{loc} not among {named}"
    return body


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def early_in_a_rate_window(margin: float = 20.0) -> None:
    """Wait, if need be, until at least `margin` seconds of the current rate-limit window
    are left (`api.limits`: per-minute windows aligned to the clock's minutes). Its
    sliding window counts the last window's hits weighted by how much of it is left, so a
    test's sequence of hits that straddles a minute counts fewer than it made, and its
    hit over the limit can pass (seen in CI on a slow machine)."""
    into = time.time() % 60
    if into > 60 - margin:
        time.sleep(60 - into + 0.1)
