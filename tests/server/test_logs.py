"""What a real server writes: JSON lines with request ids, and never answer text or keys
(contract §1, §5)."""

import json
from collections.abc import Callable
from typing import Any

from tests.conftest import submission, survey_definition
from tests.server.conftest import StartServer

MARKER = "Zebra-Quokka-4417"


def test_logs_carry_request_ids_and_no_secrets(
    fresh_database: Callable[[str], str], start_server: StartServer
) -> None:
    server = start_server(fresh_database("sqlite"), workers=1)
    token = server.create_key(name="logs-admin", role="admin")
    marked = f"We listen. {MARKER} keeps confidences."
    with server.client(token) as client:
        assert client.post("/v1/surveys", json=survey_definition()).status_code == 201
        posted = client.post(
            "/v1/surveys/trust/responses",
            json=submission(trust_actions=marked),
            headers={"Idempotency-Key": f"idem-{MARKER}", "X-Request-ID": "trace-one"},
        )
        assert posted.status_code == 201, posted.text
        assert posted.headers["x-request-id"] == "trace-one"
        replay = client.post(
            "/v1/surveys/trust/responses",
            json=submission(trust_actions=marked),
            headers={"Idempotency-Key": f"idem-{MARKER}"},
        )
        assert replay.status_code == 200
        # Rejected input that holds the marker: too long, not an option, unknown question.
        rejected = client.post(
            "/v1/surveys/trust/responses",
            json=submission(trust_actions=marked * 20, role=MARKER, **{MARKER.lower(): 1}),
        )
        assert rejected.status_code == 422, rejected.text
        malformed = client.post(
            "/v1/surveys/trust/responses",
            content=f'{{"site": "{MARKER}", ',
            headers={"Content-Type": "application/json"},
        )
        assert malformed.status_code == 422, malformed.text
        assert client.get(f"/v1/surveys/trust/responses/{posted.json()['id']}").status_code == 200
    with server.client(f"{token}x") as stranger:
        assert stranger.get("/v1/surveys").status_code == 401
    server.stop()

    output = server.output()
    assert MARKER not in output
    assert MARKER.lower() not in output
    assert token not in output
    assert token[3:] not in output  # not even without its prefix

    # One JSON object a line, uvicorn's own lines included.
    lines = [line for line in server.stderr_path.read_text().splitlines() if line.strip()]
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]
    assert all(isinstance(e, dict) and e.get("message") for e in entries), lines
    requests = [e for e in entries if e.get("logger") == "hearme.access"]
    assert len(requests) >= 8, entries
    assert all(e.get("request_id") for e in requests), requests
    assert len({e["request_id"] for e in requests}) == len(requests)
    assert any(e["request_id"] == "trace-one" and e["status"] == 201 for e in requests)
    assert any(e.get("key") == "logs-admin" for e in requests)
    statuses = sorted(e["status"] for e in requests if e["route"].endswith("/responses"))
    assert statuses == [200, 201, 422, 422]
