"""Key lifecycle (contract §11): expiry, and no revoking one's own key or the last admin."""

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

import api.cli
from api.app import create_app
from schemas.base import utcnow
from schemas.keys import KeyCreate, Role
from service.database import Database
from service.errors import Conflict
from service.key_cache import KEYS
from service.keys import Principal, create_key, revoke_key
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer


def expire(db_url: str, name: str, *, at: datetime | None = None) -> None:
    """Set a key's expiry in the database (the API only accepts future times). An expiry
    moved in the database reaches a process like a revocation, within the key cache's
    bound (`service.key_cache`): this process's cache is cleared to skip past it."""
    engine = create_engine(db_url)
    try:
        with engine.begin() as conn:
            when = (at or utcnow() - timedelta(seconds=1)).astimezone(UTC)
            value = when.replace(tzinfo=None) if engine.dialect.name == "sqlite" else when
            conn.execute(
                text("UPDATE api_key SET expires_at = :at WHERE name = :name"),
                {"at": value, "name": name},
            )
    finally:
        engine.dispose()
    KEYS.clear()


def test_a_key_with_expires_at_works_until_then_and_is_a_401_after(
    client: TestClient, admin: dict[str, str], db_url: str
) -> None:
    until = (utcnow() + timedelta(days=30)).replace(microsecond=0)
    created = client.post(
        "/v1/keys",
        json={"name": "temp", "role": "evaluator", "expires_at": until.isoformat()},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert datetime.fromisoformat(created.json()["expires_at"]) == until
    token = bearer(created.json()["key"])
    assert client.get("/v1/surveys", headers=token).status_code == 200

    expire(db_url, "temp")
    refused = client.get("/v1/surveys", headers=token)
    body = assert_problem(refused, 401)
    assert "expired" in body["detail"]
    assert refused.headers["www-authenticate"].lower().startswith("bearer")

    listed = {k["name"]: k for k in client.get("/v1/keys", headers=admin).json()}
    assert listed["temp"]["expires_at"] is not None
    assert listed["temp"]["revoked_at"] is None
    assert listed["admin"]["expires_at"] is None


def test_a_key_in_use_is_refused_once_its_expires_at_passes(
    client: TestClient, admin: dict[str, str]
) -> None:
    until = utcnow() + timedelta(seconds=1.5)
    created = client.post(
        "/v1/keys",
        json={"name": "brief", "role": "evaluator", "expires_at": until.isoformat()},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    token = bearer(created.json()["key"])
    assert client.get("/v1/surveys", headers=token).status_code == 200  # now cached
    time.sleep(max(0.0, (until - utcnow()).total_seconds()) + 0.05)
    assert_problem(client.get("/v1/surveys", headers=token), 401)


@pytest.mark.parametrize(
    "expires_at",
    ["2001-01-01T00:00:00Z", "2999-01-01T00:00:00", "tomorrow", 1e12],
    ids=["past", "naive", "words", "number"],
)
def test_a_bad_expires_at_is_a_422(
    client: TestClient, admin: dict[str, str], expires_at: Any
) -> None:
    created = client.post(
        "/v1/keys", json={"name": "bad", "role": "reader", "expires_at": expires_at}, headers=admin
    )
    assert_problem(created, 422, ["expires_at"])
    names = [k["name"] for k in client.get("/v1/keys", headers=admin).json()]
    assert "bad" not in names


def test_an_admin_cannot_revoke_its_own_key(client: TestClient, admin: dict[str, str]) -> None:
    refused = client.delete("/v1/keys/admin", headers=admin)
    body = assert_problem(refused, 409)
    assert "itself" in body["detail"]
    assert client.get("/v1/keys", headers=admin).status_code == 200


def test_an_admin_revokes_another_admin_but_not_the_last(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, db_url: str
) -> None:
    other = bearer(make_key("admin", name="other-admin"))
    assert client.delete("/v1/keys/other-admin", headers=admin).status_code == 204
    assert client.get("/v1/keys", headers=other).status_code == 401
    # The fixture's key is now the only admin: it cannot go by its own hand either.
    assert_problem(client.delete("/v1/keys/admin", headers=admin), 409)


def principal_outside(database: Database) -> Principal:
    """A caller that is no stored key (as a maintenance script would be)."""
    return Principal(key_id=-1, name="maintenance", role=Role.admin, sites=None)


def test_the_last_live_admin_key_cannot_be_revoked(database: Database, db_url: str) -> None:
    with database.session() as session:
        create_key(session, data=KeyCreate(name="a1", role=Role.admin))
        create_key(session, data=KeyCreate(name="a2", role=Role.admin))
        create_key(session, data=KeyCreate(name="expired-admin", role=Role.admin))
        create_key(session, data=KeyCreate(name="ev", role=Role.evaluator))
    expire(db_url, "expired-admin")
    caller = principal_outside(database)
    with database.session() as session:
        revoke_key(session, principal=caller, name="a1")
    # a2 is the last admin that works: the expired one does not count.
    with pytest.raises(Conflict, match="last admin"), database.session() as session:
        revoke_key(session, principal=caller, name="a2")
    with database.session() as session:
        revoke_key(session, principal=caller, name="expired-admin")  # not live: allowed
        revoke_key(session, principal=caller, name="ev")
        revoke_key(session, principal=caller, name="a1")  # already revoked: a no-op
    with database.session() as session:
        rows = session.execute(text("SELECT name, revoked_at FROM api_key")).all()
    assert {name for name, revoked in rows if revoked is None} == {"a2"}


def test_keys_create_expires_in_days(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("HEARME_DATABASE_URL", url)
    runner = CliRunner()
    result = runner.invoke(
        api.cli.app, ["keys", "create", "--name", "t", "--role", "admin", "--expires-in", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "expiring at" in result.stdout
    token = result.stdout.strip().splitlines()[-1]
    with TestClient(create_app(Settings(database_url=url))) as client:
        listed = client.get("/v1/keys", headers=bearer(token))
        assert listed.status_code == 200, listed.text
        expires = datetime.fromisoformat(listed.json()[0]["expires_at"])
        assert abs(expires - (utcnow() + timedelta(days=2))) < timedelta(minutes=1)
        expire(url, "t")
        assert client.get("/v1/keys", headers=bearer(token)).status_code == 401
    for bad in ("0", "-1", "soon"):
        refused = runner.invoke(
            api.cli.app, ["keys", "create", "--name", "u", "--role", "admin", "--expires-in", bad]
        )
        assert refused.exit_code != 0, bad
        assert "hm_" not in refused.stdout
