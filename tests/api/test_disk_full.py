"""SQLite on a full disk (contract §11): a write that finds no room is a 507 problem+json,
nothing acknowledged before is lost, the file stays intact, and writes succeed again once
there is room. The disk is a small tmpfs mounted for the test (root only: skipped, with
the reason, where the machine does not allow mounting)."""

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from schemas.keys import KeyCreate, Role
from service.database import Database, upgrade
from service.keys import create_key
from service.settings import Settings
from tests.conftest import assert_problem, bearer, survey_definition

SIZE_MIB = 4


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE_MIB}m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def long_text_survey() -> dict[str, Any]:
    return survey_definition(
        questions=[{"id": "notes", "type": "text", "text": "Notes", "max_length": 100_000}]
    )


def test_a_full_disk_is_a_507_and_the_file_stays_intact(small_disk: Path) -> None:
    path = small_disk / "hearme.db"
    settings = Settings(database_url=f"sqlite:///{path}")
    upgrade(settings)
    database = Database(settings)
    try:
        with database.session() as session:
            _, token = create_key(session, data=KeyCreate(name="admin", role=Role.admin))
        admin = bearer(token)
        filler = small_disk / "filler"
        filler.write_bytes(b"\0" * (512 * 1024))  # room to give back at the end
        with TestClient(create_app(settings, database=database)) as client:
            assert (
                client.post("/v1/surveys", json=long_text_survey(), headers=admin).status_code
                == 201
            )
            acknowledged: list[str] = []
            statuses: list[int] = []
            for number in range(200):
                body = {
                    "site": "site-1",
                    "wave": "midway",
                    "answers": {"notes": f"{number} " + "x" * 60_000},
                }
                response = client.post("/v1/surveys/trust/responses", json=body, headers=admin)
                statuses.append(response.status_code)
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])
                    continue
                assert_problem(response, 507)
                break
            assert statuses[-1] == 507, statuses
            assert set(statuses) == {201, 507}, statuses
            assert len(acknowledged) >= 3

            # Reads that need no write still work. (A read of answers also appends its
            # audit record, and is refused rather than served unrecorded when that record
            # finds no room: tests/api/test_audit.py.)
            assert client.get("/v1/surveys/trust", headers=admin).status_code == 200

            # Room again: every acknowledged response is there, whole, and writes succeed
            # without a restart.
            filler.unlink()
            listed = client.get(
                "/v1/surveys/trust/responses", params={"limit": 1000}, headers=admin
            )
            assert listed.status_code == 200, listed.text
            assert [r["id"] for r in listed.json()["items"]] == acknowledged
            again = client.post(
                "/v1/surveys/trust/responses",
                json={"site": "site-1", "wave": "midway", "answers": {"notes": "short"}},
                headers=admin,
            )
            assert again.status_code == 201, again.text
            acknowledged.append(again.json()["id"])
    finally:
        database.dispose()

    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = [row[0] for row in conn.execute("SELECT id FROM response ORDER BY pk")]
    assert stored == acknowledged
