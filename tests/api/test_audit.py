"""The audit log (contract §11): reads of answers and free text, writes, erasures and key
changes are recorded with who, what, target, status and request id; never answer text;
admins list them with filters and pages; nothing changes them; old ones are pruned."""

from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from api.app import create_app
from api.audit_trail import AUDITED
from schemas.audit import AuditRecord
from schemas.base import utcnow
from service import audit
from service.audit import Action
from service.database import Database
from service.settings import Settings
from tests.conftest import CODEBOOK_THEMES, MakeKey, assert_problem, bearer, submission

MARKER = "zebra-quartz-4417"  # an answer text that must never reach the audit log


def records(client: TestClient, admin: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    listed = client.get("/v1/audit", params={"limit": 1000, **params}, headers=admin)
    assert listed.status_code == 200, listed.text
    items: list[dict[str, Any]] = listed.json()["items"]
    return [r for r in items if r["action"] != "audit.read"]


def raw_rows(db_url: str) -> list[dict[str, Any]]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT * FROM audit_record")).mappings()]
    finally:
        engine.dispose()


def test_reads_writes_and_erasures_are_recorded_without_answer_text(
    client: TestClient,
    admin: dict[str, str],
    make_key: MakeKey,
    survey: dict[str, Any],
    db_url: str,
) -> None:
    evaluator = bearer(make_key("evaluator", name="eva"))
    created = client.post(
        "/v1/surveys/trust/responses",
        json=submission(trust_actions=f"Listen. {MARKER}"),
        headers={**admin, "X-Request-ID": "req-submit-1"},
    )
    assert created.status_code == 201
    response_id = created.json()["id"]
    assert (
        client.get(f"/v1/surveys/trust/responses/{response_id}", headers=evaluator).status_code
        == 200
    )
    assert client.get("/v1/surveys/trust/responses", headers=evaluator).status_code == 200
    codebook = {"question": "trust_actions", "themes": CODEBOOK_THEMES}
    put = client.put("/v1/surveys/trust/codebooks/trust_actions", json=codebook, headers=evaluator)
    assert put.status_code == 200
    codings = f"/v1/surveys/trust/responses/{response_id}/codings/trust_actions"
    assert (
        client.put(codings, json={"categories": ["rapport"]}, headers=evaluator).status_code == 200
    )
    assert client.get(codings + "/suggestions", headers=evaluator).status_code == 200
    assert (
        client.delete(f"/v1/surveys/trust/responses/{response_id}", headers=admin).status_code
        == 204
    )
    assert client.get("/v1/surveys", headers=admin).status_code == 200  # definitions: not audited
    assert client.get("/v1/surveys/trust/stats/composition/role", headers=admin).status_code == 200

    got = [
        (r["action"], r["key"], r["role"], r["survey"], r["target"], r["status"])
        for r in records(client, admin)
    ]
    assert got == [
        ("survey.create", "admin", "admin", "trust", None, 201),
        ("response.submit", "admin", "admin", "trust", response_id, 201),
        ("response.read", "eva", "evaluator", "trust", response_id, 200),
        ("response.list", "eva", "evaluator", "trust", None, 200),
        ("codebook.write", "eva", "evaluator", "trust", "trust_actions", 200),
        ("coding.write", "eva", "evaluator", "trust", response_id, 200),
        ("suggestions.read", "eva", "evaluator", "trust", response_id, 200),
        ("response.erase", "admin", "admin", "trust", response_id, 204),
    ]
    submit = records(client, admin, action="response.submit")[0]
    assert submit["request_id"] == "req-submit-1"
    assert set(submit) == {
        "id",
        "at",
        "key",
        "role",
        "action",
        "survey",
        "target",
        "status",
        "request_id",
    }
    for row in raw_rows(db_url):
        assert MARKER not in str(row)
        assert "Listen" not in str(row)


def test_refused_attempts_are_recorded_with_their_status(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> None:
    reader = bearer(make_key("reader", name="outsider"))
    assert client.get("/v1/surveys/trust/responses", headers=reader).status_code == 403
    assert client.get("/v1/surveys/trust/responses/nope", headers=admin).status_code == 404
    assert client.get("/v1/surveys/trust/responses").status_code == 401
    got = [(r["action"], r["key"], r["status"]) for r in records(client, admin)][1:]
    assert got == [
        ("response.list", "outsider", 403),
        ("response.read", "admin", 404),
        ("response.list", None, 401),
    ]


def test_key_changes_are_recorded(client: TestClient, admin: dict[str, str]) -> None:
    assert (
        client.post("/v1/keys", json={"name": "k1", "role": "reader"}, headers=admin).status_code
        == 201
    )
    assert client.delete("/v1/keys/k1", headers=admin).status_code == 204
    assert client.delete("/v1/keys/admin", headers=admin).status_code == 409
    got = [(r["action"], r["target"], r["status"]) for r in records(client, admin)]
    assert got == [
        ("key.create", "k1", 201),
        ("key.revoke", "k1", 204),
        ("key.revoke", "admin", 409),
    ]


def test_release_changes_are_recorded(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    release = {
        "id": "r1",
        "title": "Roles",
        "tables": [{"id": "roles", "kind": "composition", "question": "role"}],
    }
    url = "/v1/surveys/trust/releases"
    assert client.post(url, json=release, headers=admin).status_code == 201
    assert client.post(url, json=release, headers=admin).status_code == 409
    assert client.delete(f"{url}/r1", headers=admin).status_code == 204
    got = [
        (r["action"], r["survey"], r["target"], r["status"])
        for r in records(client, admin)
        if r["action"].startswith("release.")
    ]
    assert got == [
        ("release.publish", "trust", "r1", 201),
        ("release.publish", "trust", "r1", 409),
        ("release.withdraw", "trust", "r1", 204),
    ]


def test_filters_and_pages(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> None:
    evaluator = bearer(make_key("evaluator", name="eva"))
    for _ in range(3):
        assert (
            client.post("/v1/surveys/trust/responses", json=submission(), headers=admin).status_code
            == 201
        )
        assert client.get("/v1/surveys/trust/responses", headers=evaluator).status_code == 200
    assert len(records(client, admin, key="eva")) == 3
    assert {r["key"] for r in records(client, admin, action="response.submit")} == {"admin"}
    assert len(records(client, admin, survey="trust")) == 7  # the survey's creation too
    assert records(client, admin, survey="other") == []

    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 2, "survey": "trust"}
        if after:
            params["after"] = after
        page = client.get("/v1/audit", params=params, headers=admin)
        assert page.status_code == 200, page.text
        seen += [r["id"] for r in page.json()["items"]]
        after = page.json()["next_cursor"]
        if after is None:
            break
    assert len(seen) == 7
    assert [int(i) for i in seen] == sorted(int(i) for i in seen)  # oldest first

    assert_problem(client.get("/v1/audit?after=%%%", headers=admin), 422)
    assert_problem(
        client.get("/v1/audit?action=response.eat", headers=admin), 422, ["query", "action"]
    )
    assert_problem(client.get("/v1/audit", headers=evaluator), 403)


def test_the_audit_log_cannot_be_changed_through_the_api(
    client: TestClient, admin: dict[str, str]
) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        response = client.request(method, "/v1/audit", headers=admin)
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET"
    assert records(client, admin) == []  # a 405 acted on nothing: no record


def test_old_records_are_pruned_after_their_retention(db_url: str, database: Database) -> None:
    with database.session() as session:
        old = AuditRecord(action="response.read", status=200, at=utcnow() - timedelta(days=40))
        recent = AuditRecord(action="response.read", status=200, at=utcnow() - timedelta(days=20))
        session.add_all([old, recent])
    with database.session() as session:
        assert audit.prune(session, retention_days=30) == 1
    assert len(raw_rows(db_url)) == 1
    # The server prunes on its own (at its first audited request, then hourly).
    with database.session() as session:
        session.add(
            AuditRecord(action="response.read", status=200, at=utcnow() - timedelta(days=40))
        )
    settings = Settings(database_url=db_url, audit_retention_days=30)
    with TestClient(create_app(settings, database=database)) as client:
        client.get("/v1/surveys/trust/responses")  # a 401, audited
    actions = sorted((r["action"], r["status"]) for r in raw_rows(db_url))
    assert actions == [("response.list", 401), ("response.read", 200)]


def _operations(app: FastAPI) -> dict[str, tuple[str, set[str]]]:
    return {
        str(r.name): (str(r.path), set(r.methods or ()))
        for r in iter_route_contexts(app.routes)
        if str(r.path).startswith(("/v1/", "/app/"))
    }


def test_every_write_and_every_read_of_answers_is_audited(client: TestClient) -> None:
    operations = _operations(client.app)  # type: ignore[arg-type]
    assert set(AUDITED) <= set(operations), "AUDITED names operations the app lacks"
    writes = {name for name, (_, methods) in operations.items() if methods - {"GET", "HEAD"}}
    assert writes <= set(AUDITED), writes - set(AUDITED)
    reads_of_answers = {
        "list_responses",
        "get_response",
        "get_codings",
        "get_suggestions",
        "coding_queue",
        "coder_discrepancies",
        "export_project_qdpx",
        "export_responses",
        "list_audit",
    }
    assert reads_of_answers <= set(AUDITED)
    assert {a.action for a in AUDITED.values()} <= set(Action)


def test_a_read_whose_record_cannot_be_written_is_refused(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    monkeypatch: Any,
) -> None:
    """No answer leaves unrecorded: a 503 instead. A write already committed answers."""
    created = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    assert created.status_code == 201

    def broken(*_: Any, **__: Any) -> None:
        raise OperationalError("INSERT INTO audit_record", {}, Exception("disk gone"))

    monkeypatch.setattr(audit, "record", broken)
    read = client.get(f"/v1/surveys/trust/responses/{created.json()['id']}", headers=admin)
    body = assert_problem(read, 503)
    assert "audit" in body["detail"]
    assert created.json()["answers"]["role"] not in read.text
    assert int(read.headers["retry-after"]) > 0
    written = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    assert written.status_code == 201
    assert client.get("/v1/surveys", headers=admin).status_code == 200  # not audited
