from typing import Any

from fastapi.testclient import TestClient

from tests.conftest import submission


def test_submit_and_read_back(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    created = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    assert created.status_code == 201, created.text
    got = client.get(f"/v1/surveys/trust/responses/{created.json()['id']}", headers=admin)
    assert got.status_code == 200
    assert got.json() == created.json()
