"""`hearme db backup PATH` (issue 10): SQLite is copied through its online backup API
while a server runs on it; PostgreSQL gets the pg_dump and pg_restore commands to run.
Either way the restored database, served by a new `hearme serve`, answers the same
statistics as the original did at the time of the backup."""

import json
import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from schemas.keys import KeyCreate, Role
from service.database import Database, upgrade
from service.demo import load_demo
from service.keys import create_key
from service.settings import Settings
from tests.server.conftest import COMMAND_TIMEOUT, Server, StartServer, hearme_command, server_env

STATS = "/v1/surveys/smhm-professionals/stats"
TABLES = (
    f"{STATS}/composition/role",
    f"{STATS}/likert/trust_confidence?by=site",
    f"{STATS}/themes/trust_actions",
)


def demo_database(url: str) -> str:
    """The demo study in the database at `url`; returns an admin key."""
    settings = Settings(database_url=url)
    upgrade(settings)
    database = Database(settings)
    try:
        with database.session() as session:
            load_demo(session)
            _, token = create_key(session, data=KeyCreate(name="admin", role=Role.admin))
    finally:
        database.dispose()
    return token


def statistics(server: Server, token: str) -> list[Any]:
    with server.client(token) as client:
        bodies = []
        for path in TABLES:
            response = client.get(path)
            assert response.status_code == 200, response.text
            bodies.append(response.json())
        return bodies


def backup(url: str, path: Path) -> str:
    done = subprocess.run(
        [*hearme_command(), "db", "backup", str(path)],
        env=server_env(url),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def submit_one(server: Server, token: str) -> None:
    body = {
        "site": "site-1",
        "wave": "final",
        "submitted_at": "2016-08-01T10:00:00Z",
        "answers": {"role": "police", "trust_confidence": 5, "trust_actions": "Listen."},
    }
    with server.client(token) as client:
        imported = client.post(
            "/v1/surveys/smhm-professionals/responses:import",
            content=(json.dumps(body) + "\n").encode(),
            headers={"Content-Type": "application/x-ndjson"},
        )
        assert imported.status_code == 200, imported.text


def test_sqlite_backup_while_serving_restores_the_same_statistics(
    tmp_path: Path, start_server: StartServer
) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    token = demo_database(url)
    live = start_server(url, workers=2)
    before = statistics(live, token)

    copy = tmp_path / "backups" / "copy.db"
    output = backup(url, copy)  # while both workers serve
    assert "integrity checked" in output
    assert not copy.with_name("copy.db.partial").exists()
    submit_one(live, token)  # after the backup: in the original only
    assert statistics(live, token) != before

    restored = start_server(f"sqlite:///{copy}")
    assert statistics(restored, token) == before


def test_sqlite_backup_refuses_a_missing_database(tmp_path: Path) -> None:
    done = subprocess.run(
        [*hearme_command(), "db", "backup", str(tmp_path / "copy.db")],
        env=server_env(f"sqlite:///{tmp_path / 'absent' / 'none.db'}"),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 1
    assert "no SQLite database" in done.stderr
    assert "Traceback" not in done.stderr


def test_postgresql_backup_commands_restore_the_same_statistics(
    tmp_path: Path, start_server: StartServer, fresh_database: Callable[[str], str]
) -> None:
    url = fresh_database("postgresql")
    token = demo_database(url)
    live = start_server(url)
    before = statistics(live, token)

    dump_file = tmp_path / "hearme.dump"
    output = backup(url, dump_file)
    commands = [line for line in output.splitlines() if line and not line.startswith("#")]
    dump, restore = (shlex.split(c) for c in commands)
    assert dump[0] == "pg_dump"
    assert restore[0] == "pg_restore"
    assert "+psycopg" not in output
    subprocess.run(dump, check=True, timeout=COMMAND_TIMEOUT)
    submit_one(live, token)

    target = fresh_database("postgresql")
    name = target.rsplit("/", 1)[-1]
    original = url.rsplit("/", 1)[-1]
    restore = [part.replace(f"/{original}", f"/{name}") for part in restore]
    subprocess.run(restore, check=True, timeout=COMMAND_TIMEOUT, capture_output=True)
    restored = start_server(target)
    assert statistics(restored, token) == before
