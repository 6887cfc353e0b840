"""Who may call what (contract §1, §2): every endpoint of the app, for every role.

The endpoints are read from the app itself, so an endpoint added without an entry in
`RULES` fails `test_every_endpoint_has_a_rule` and the matrix below.
"""

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from service.events import emit
from service.events.delivery import fan_out
from service.permissions import PERMISSIONS, Action
from service.settings import Settings
from tests.conftest import PROBLEM_JSON, MakeKey, bearer, submission, survey_definition

ROLES = ("admin", "evaluator", "coder", "submitter", "reader")
NO_KEY = "no key"
UNKNOWN_KEY = "unknown key"
CALLERS = (*ROLES, NO_KEY, UNKNOWN_KEY)

# Operations and documentation: no auth (contract §8).
OPEN_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
}

Endpoint = tuple[str, str]  # (method, path template)


def app_endpoints(app: FastAPI) -> set[Endpoint]:
    """Every (method, path template) the app serves, HEAD aside, the workbench's pages
    (/app, session cookies instead of keys: tests/api/test_web.py) aside."""
    endpoints: set[Endpoint] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path
        assert path is not None
        if path == "/app" or path.startswith("/app/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                endpoints.add((method, path))
    return endpoints


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class World:
    """Makes, for each call, the fresh resources its endpoint needs (a response to read or
    erase, a key to revoke, an unused survey id), so calls never depend on each other."""

    def __init__(self, client: TestClient, admin: dict[str, str], make_key: MakeKey) -> None:
        self.client = client
        self.admin = admin
        self.make_key = make_key
        self._numbers = itertools.count(1)
        self.caller: dict[str, str] = {}  # the headers of the key under test

    def number(self) -> int:
        return next(self._numbers)

    def response_id(self) -> str:
        created = self.client.post(
            "/v1/surveys/trust/responses", json=submission(), headers=self.admin
        )
        assert created.status_code == 201, created.text
        response_id: str = created.json()["id"]
        return response_id

    def codebook(self) -> str:
        """The codebook of `trust_actions` exists; returns its path."""
        path = "/v1/surveys/trust/codebooks/trust_actions"
        if self.client.get(path, headers=self.admin).status_code == 404:
            put = self.client.put(path, json=CODEBOOK, headers=self.admin)
            assert put.status_code == 200, put.text
        return path

    def release(self) -> str:
        """A fresh published release of the fixture survey; returns its path."""
        number = self.number()
        body = {
            "id": f"release-{number}",
            "title": "Roles",
            "tables": [{"id": "roles", "kind": "composition", "question": "role"}],
        }
        created = self.client.post("/v1/surveys/trust/releases", json=body, headers=self.admin)
        assert created.status_code == 201, created.text
        return f"/v1/surveys/trust/releases/release-{number}"

    def webhook_id(self) -> str:
        """A webhook the caller owns where it may make one, else the admin's. Its URL is
        never sent to: these tests run without a dispatcher."""
        for headers in (self.caller, self.admin):
            made = self.client.post("/v1/webhooks", json=WEBHOOK, headers=headers)
            if made.status_code == 201:
                webhook_id: str = made.json()["id"]
                return webhook_id
        raise AssertionError("no webhook could be made")

    def delivery(self) -> str:
        """The retry path of a queued delivery of a fresh webhook."""
        webhook_id = self.webhook_id()
        self.response_id()
        database = self.client.app.state.database  # type: ignore[attr-defined]
        with database.session() as session:  # an event every role's webhook delivers
            emit(session, type="release.published", survey="trust", data={"id": "r", "title": ""})
        with database.session() as session:
            assert fan_out(session) >= 1
        listed = self.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=self.admin)
        event_id = listed.json()["items"][-1]["event_id"]
        return f"/v1/webhooks/{webhook_id}/deliveries/{event_id}/retry"

    def key_name(self) -> str:
        name = f"victim-{self.number()}"
        self.make_key("reader", name=name)
        return name


WEBHOOK = {"url": "https://93.184.215.14/hook", "events": ["*"]}

CODEBOOK: dict[str, Any] = {
    "question": "trust_actions",
    "themes": [
        {
            "id": "relationship",
            "label": "Relationship-based practice",
            "domain": "being",
            "categories": [
                {"id": "rapport", "label": "Building rapport", "keywords": ["rapport"]},
                {"id": "listening", "label": "Listening", "origin": "inductive"},
            ],
        }
    ],
}


def coded_answer(w: World) -> str:
    """The codings path of a fresh answer to `trust_actions`, whose codebook exists."""
    w.codebook()
    created = w.client.post(
        "/v1/surveys/trust/responses",
        json=submission(trust_actions="Listen to them."),
        headers=w.admin,
    )
    assert created.status_code == 201, created.text
    return f"/v1/surveys/trust/responses/{created.json()['id']}/codings/trust_actions"


def resolved_answer(w: World) -> str:
    """The consensus path of a fresh answer that has a consensus."""
    path = coded_answer(w) + "/consensus"
    put = w.client.put(path, json={"categories": ["rapport"]}, headers=w.admin)
    assert put.status_code == 200, put.text
    return path


def exported_qdc(w: World) -> Call:
    """An import of the codebook's own `.qdc` export."""
    path = w.codebook()
    exported = w.client.get(path + "/export.qdc", headers=w.admin)
    assert exported.status_code == 200, exported.text
    return Call(
        "POST",
        path + "/import.qdc",
        content=exported.content,
        headers={"Content-Type": "application/xml"},
    )


def exported_qdpx(w: World) -> Call:
    """A dry-run import of the question's own `.qdpx` export."""
    path = w.codebook()
    exported = w.client.get(path + "/export.qdpx", headers=w.admin)
    assert exported.status_code == 200, exported.text
    return Call(
        "POST",
        path + "/import.qdpx?dry_run=true",
        content=exported.content,
        headers={"Content-Type": "application/zip"},
    )


def _ndjson_row() -> bytes:
    return (
        b'{"site": "site-1", "wave": "midway", "submitted_at": "2015-08-02T10:00:00Z",'
        b' "answers": {"role": "police", "trust_confidence": 4}}\n'
    )


@dataclass(frozen=True)
class Rule:
    action: Action
    success: int
    prepare: Callable[[World], Call]

    @property
    def allowed(self) -> frozenset[str]:
        """The roles the permissions table gives this endpoint's action."""
        return frozenset(role.value for role in PERMISSIONS[self.action])


def rule(action: Action, success: int, prepare: Callable[[World], Call]) -> Rule:
    return Rule(action, success, prepare)


RESPONSES = "/v1/surveys/{survey}/responses"
ONE_RESPONSE = "/v1/surveys/{survey}/responses/{response_id}"
CODEBOOK_PATH = "/v1/surveys/{survey}/codebooks/{question}"
CODINGS_PATH = "/v1/surveys/{survey}/responses/{response_id}/codings/{question}"
STATS = "/v1/surveys/{survey}/stats"
RELEASES = "/v1/surveys/{survey}/releases"

RULES: dict[Endpoint, Rule] = {
    ("POST", "/v1/surveys"): rule(
        Action.manage_surveys,
        201,
        lambda w: Call("POST", "/v1/surveys", json=survey_definition(id=f"new-{w.number()}")),
    ),
    ("PUT", "/v1/surveys/{survey}"): rule(
        Action.manage_surveys,
        200,
        lambda w: Call(
            "PUT", "/v1/surveys/trust", json=survey_definition(title=f"Retitled {w.number()}")
        ),
    ),
    ("GET", "/v1/surveys"): rule(Action.read_surveys, 200, lambda w: Call("GET", "/v1/surveys")),
    ("GET", "/v1/surveys/{survey}"): rule(
        Action.read_surveys, 200, lambda w: Call("GET", "/v1/surveys/trust")
    ),
    ("POST", RESPONSES): rule(
        Action.submit_responses,
        201,
        lambda w: Call("POST", "/v1/surveys/trust/responses", json=submission()),
    ),
    ("POST", RESPONSES + ":import"): rule(
        Action.import_responses,
        200,
        lambda w: Call(
            "POST",
            "/v1/surveys/trust/responses:import",
            content=_ndjson_row(),
            headers={"Content-Type": "application/x-ndjson"},
        ),
    ),
    ("GET", RESPONSES): rule(
        Action.read_responses, 200, lambda w: Call("GET", "/v1/surveys/trust/responses")
    ),
    ("GET", ONE_RESPONSE): rule(
        Action.read_responses,
        200,
        lambda w: Call("GET", f"/v1/surveys/trust/responses/{w.response_id()}"),
    ),
    ("DELETE", ONE_RESPONSE): rule(
        Action.erase_responses,
        204,
        lambda w: Call("DELETE", f"/v1/surveys/trust/responses/{w.response_id()}"),
    ),
    ("PUT", CODEBOOK_PATH): rule(
        Action.edit_codebooks,
        200,
        lambda w: Call("PUT", "/v1/surveys/trust/codebooks/trust_actions", json=CODEBOOK),
    ),
    ("GET", CODEBOOK_PATH): rule(Action.read_codebooks, 200, lambda w: Call("GET", w.codebook())),
    ("GET", CODEBOOK_PATH + "/history"): rule(
        Action.edit_codebooks, 200, lambda w: Call("GET", w.codebook() + "/history")
    ),
    ("PUT", CODINGS_PATH): rule(
        Action.code,
        200,
        lambda w: Call("PUT", coded_answer(w), json={"categories": ["rapport"]}),
    ),
    ("GET", CODINGS_PATH): rule(Action.code, 200, lambda w: Call("GET", coded_answer(w))),
    ("GET", CODINGS_PATH + "/suggestions"): rule(
        Action.read_suggestions,
        200,
        lambda w: Call("GET", coded_answer(w) + "/suggestions"),
    ),
    ("PUT", CODINGS_PATH + "/consensus"): rule(
        Action.resolve,
        200,
        lambda w: Call("PUT", coded_answer(w) + "/consensus", json={"categories": ["rapport"]}),
    ),
    ("DELETE", CODINGS_PATH + "/consensus"): rule(
        Action.resolve, 204, lambda w: Call("DELETE", resolved_answer(w))
    ),
    ("GET", CODEBOOK_PATH + "/queue"): rule(
        Action.code, 200, lambda w: Call("GET", w.codebook() + "/queue")
    ),
    ("GET", CODEBOOK_PATH + "/agreement"): rule(
        Action.read_agreement,
        200,
        lambda w: Call("GET", w.codebook() + "/agreement?coders=coder-a,coder-b"),
    ),
    ("GET", CODEBOOK_PATH + "/discrepancies"): rule(
        Action.read_agreement,
        200,
        lambda w: Call("GET", w.codebook() + "/discrepancies?coders=coder-a,coder-b"),
    ),
    ("GET", CODEBOOK_PATH + "/export.qdc"): rule(
        Action.read_codebooks, 200, lambda w: Call("GET", w.codebook() + "/export.qdc")
    ),
    ("POST", CODEBOOK_PATH + "/import.qdc"): rule(Action.edit_codebooks, 200, exported_qdc),
    ("GET", CODEBOOK_PATH + "/export.qdpx"): rule(
        Action.export_projects, 200, lambda w: Call("GET", w.codebook() + "/export.qdpx")
    ),
    ("POST", CODEBOOK_PATH + "/import.qdpx"): rule(Action.import_projects, 200, exported_qdpx),
    ("GET", STATS + "/composition/{question}"): rule(
        Action.read_statistics,
        200,
        lambda w: Call("GET", "/v1/surveys/trust/stats/composition/role"),
    ),
    ("GET", STATS + "/likert/{question}"): rule(
        Action.read_statistics,
        200,
        lambda w: Call("GET", "/v1/surveys/trust/stats/likert/trust_confidence?by=site"),
    ),
    ("GET", STATS + "/likert/{question}/compare"): rule(
        Action.read_statistics,
        200,
        lambda w: Call(
            "GET",
            "/v1/surveys/trust/stats/likert/trust_confidence/compare?wave=midway&wave=final",
        ),
    ),
    ("GET", STATS + "/themes/{question}"): rule(
        Action.read_statistics,
        200,
        lambda w: Call("GET", w.codebook().replace("codebooks", "stats/themes") + "?format=csv"),
    ),
    ("GET", "/v1/surveys/{survey}/export"): rule(
        Action.export_responses, 200, lambda w: Call("GET", "/v1/surveys/trust/export?format=sav")
    ),
    ("GET", "/v1/surveys/{survey}/export/dictionary"): rule(
        Action.export_responses, 200, lambda w: Call("GET", "/v1/surveys/trust/export/dictionary")
    ),
    ("GET", "/v1/surveys/{survey}/report"): rule(
        Action.read_statistics, 200, lambda w: Call("GET", "/v1/surveys/trust/report?format=html")
    ),
    ("POST", RELEASES): rule(
        Action.publish_releases,
        201,
        lambda w: Call(
            "POST",
            "/v1/surveys/trust/releases",
            json={
                "id": f"made-{w.number()}",
                "title": "Confidence",
                "tables": [{"id": "t", "kind": "likert", "question": "trust_confidence"}],
            },
        ),
    ),
    ("GET", RELEASES): rule(
        Action.read_releases, 200, lambda w: Call("GET", "/v1/surveys/trust/releases")
    ),
    ("GET", RELEASES + "/{release}"): rule(
        Action.read_releases, 200, lambda w: Call("GET", w.release() + "?format=csv")
    ),
    ("GET", RELEASES + "/{release}/tables/{table}"): rule(
        Action.read_releases, 200, lambda w: Call("GET", w.release() + "/tables/roles")
    ),
    ("DELETE", RELEASES + "/{release}"): rule(
        Action.withdraw_releases, 204, lambda w: Call("DELETE", w.release())
    ),
    ("POST", "/v1/keys"): rule(
        Action.manage_keys,
        201,
        lambda w: Call("POST", "/v1/keys", json={"name": f"made-{w.number()}", "role": "reader"}),
    ),
    ("GET", "/v1/keys"): rule(Action.manage_keys, 200, lambda w: Call("GET", "/v1/keys")),
    ("GET", "/v1/audit"): rule(Action.read_audit, 200, lambda w: Call("GET", "/v1/audit?limit=5")),
    ("GET", "/v1/events"): rule(Action.read_events, 200, lambda w: Call("GET", "/v1/events")),
    ("POST", "/v1/webhooks"): rule(
        Action.manage_webhooks, 201, lambda w: Call("POST", "/v1/webhooks", json=WEBHOOK)
    ),
    ("GET", "/v1/webhooks"): rule(
        Action.manage_webhooks, 200, lambda w: Call("GET", "/v1/webhooks")
    ),
    ("DELETE", "/v1/webhooks/{webhook_id}"): rule(
        Action.manage_webhooks,
        204,
        lambda w: Call("DELETE", f"/v1/webhooks/{w.webhook_id()}"),
    ),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries"): rule(
        Action.manage_webhooks,
        200,
        lambda w: Call("GET", f"/v1/webhooks/{w.webhook_id()}/deliveries?status=pending"),
    ),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{event_id}/retry"): rule(
        Action.manage_webhooks, 202, lambda w: Call("POST", w.delivery())
    ),
    ("DELETE", "/v1/keys/{name}"): rule(
        Action.manage_keys, 204, lambda w: Call("DELETE", f"/v1/keys/{w.key_name()}")
    ),
}


def caller_headers(caller: str, make_key: MakeKey) -> dict[str, str]:
    if caller == NO_KEY:
        return {}
    if caller == UNKNOWN_KEY:
        return bearer("hm_" + "x" * 43)
    return bearer(make_key(caller, name=f"caller-{caller}"))


def expected_status(caller: str, rule: Rule) -> int:
    if caller in (NO_KEY, UNKNOWN_KEY):
        return 401
    return rule.success if caller in rule.allowed else 403


def send(client: TestClient, call: Call, headers: dict[str, str]) -> httpx.Response:
    response: httpx.Response = client.request(
        call.method,
        call.url,
        json=call.json,
        content=call.content,
        headers={**call.headers, **headers},
    )
    return response


def problem_mismatch(response: httpx.Response, status: int) -> str | None:
    """Why an error response is not a proper problem+json, or None."""
    if not response.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return f"content-type {response.headers.get('content-type')!r}"
    body = response.json()
    if body.get("status") != status or not body.get("title"):
        return f"body {body!r}"
    return None


@pytest.fixture
def bare_app(tmp_path: Path) -> Iterator[FastAPI]:
    """An app that is only inspected, never called."""
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'routes.db'}"))
    yield app
    app.state.database.dispose()


def test_every_endpoint_has_a_rule(bare_app: FastAPI) -> None:
    guarded = {e for e in app_endpoints(bare_app) if e[1] not in OPEN_PATHS}
    assert guarded - RULES.keys() == set(), "endpoints without an expectation in RULES"
    assert RULES.keys() - guarded == set(), "RULES names endpoints the app does not serve"


@pytest.mark.parametrize("caller", CALLERS)
def test_every_endpoint_for_every_caller(
    client: TestClient,
    admin: dict[str, str],
    make_key: MakeKey,
    survey: dict[str, Any],
    caller: str,
) -> None:
    world = World(client, admin, make_key)
    headers = caller_headers(caller, make_key)
    world.caller = headers
    mismatches: list[str] = []
    for method, path in sorted(app_endpoints(client.app)):  # type: ignore[arg-type]
        if path in OPEN_PATHS:
            continue
        endpoint_rule = RULES.get((method, path))
        if endpoint_rule is None:
            mismatches.append(f"{method} {path}: no expectation in RULES")
            continue
        call = endpoint_rule.prepare(world)
        response = send(client, call, headers)
        want = expected_status(caller, endpoint_rule)
        if response.status_code != want:
            mismatches.append(
                f"{method} {path}: {response.status_code} instead of {want}: {response.text[:200]}"
            )
        elif want >= 400 and (why := problem_mismatch(response, want)):
            mismatches.append(f"{method} {path}: {want} but not problem+json: {why}")
        elif want == 401 and "bearer" not in response.headers.get("www-authenticate", "").lower():
            mismatches.append(f"{method} {path}: 401 without WWW-Authenticate: Bearer")
    assert not mismatches, "\n".join(mismatches)


def test_open_endpoints_answer_without_a_key(client: TestClient) -> None:
    served = {path for _, path in app_endpoints(client.app)}  # type: ignore[arg-type]
    assert served >= OPEN_PATHS
    for path in sorted(OPEN_PATHS):
        response = client.get(path)
        assert response.status_code == 200, (path, response.text[:200])


def test_non_v1_paths_are_only_the_open_ones(bare_app: FastAPI) -> None:
    outside = {path for _, path in app_endpoints(bare_app) if not path.startswith("/v1/")}
    assert outside == OPEN_PATHS


def test_a_malformed_authorization_header_is_401(
    client: TestClient, survey: dict[str, Any]
) -> None:
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "hm_abc", ""):
        response = client.get("/v1/surveys", headers={"Authorization": value})
        assert response.status_code == 401, value
        assert problem_mismatch(response, 401) is None


# --- site binding -----------------------------------------------------------------


def test_submitter_bound_to_a_site_submits_only_there(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    site2 = bearer(make_key("submitter", sites=["site-2"]))
    refused = client.post("/v1/surveys/trust/responses", json=submission(), headers=site2)
    assert refused.status_code == 403, refused.text
    assert problem_mismatch(refused, 403) is None
    accepted = client.post(
        "/v1/surveys/trust/responses", json={**submission(), "site": "site-2"}, headers=site2
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["site"] == "site-2"
    listed = client.get("/v1/surveys/trust/responses", headers=admin).json()["items"]
    assert [r["id"] for r in listed] == [accepted.json()["id"]]


def test_evaluator_bound_to_a_site_reads_only_that_site(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    ids: dict[str, list[str]] = {"site-1": [], "site-2": []}
    for site in ("site-1", "site-2", "site-1", "site-2", "site-2"):
        created = client.post(
            "/v1/surveys/trust/responses", json={**submission(), "site": site}, headers=admin
        )
        assert created.status_code == 201, created.text
        ids[site].append(created.json()["id"])
    evaluator = bearer(make_key("evaluator", sites=["site-2"]))

    listed = client.get("/v1/surveys/trust/responses", headers=evaluator)
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["items"]] == ids["site-2"]
    assert {r["site"] for r in listed.json()["items"]} == {"site-2"}

    own = client.get("/v1/surveys/trust/responses?site=site-2", headers=evaluator)
    assert own.status_code == 200
    assert [r["id"] for r in own.json()["items"]] == ids["site-2"]

    for query in ("?site=site-1", "?site=site-1&site=site-2"):
        other = client.get(f"/v1/surveys/trust/responses{query}", headers=evaluator)
        assert other.status_code == 403, (query, other.text)
        assert problem_mismatch(other, 403) is None

    foreign = client.get(f"/v1/surveys/trust/responses/{ids['site-1'][0]}", headers=evaluator)
    assert foreign.status_code == 403, foreign.text
    assert problem_mismatch(foreign, 403) is None
    mine = client.get(f"/v1/surveys/trust/responses/{ids['site-2'][0]}", headers=evaluator)
    assert mine.status_code == 200, mine.text


def test_a_revoked_key_is_refused_at_once(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    doomed = bearer(make_key("evaluator", name="doomed"))
    assert client.get("/v1/surveys/trust/responses", headers=doomed).status_code == 200
    revoked = client.delete("/v1/keys/doomed", headers=admin)
    assert revoked.status_code == 204, revoked.text
    for path in ("/v1/surveys/trust/responses", "/v1/surveys"):
        response = client.get(path, headers=doomed)
        assert response.status_code == 401, response.text
        assert problem_mismatch(response, 401) is None
    listed = {k["name"]: k for k in client.get("/v1/keys", headers=admin).json()}
    assert listed["doomed"]["revoked_at"] is not None
    assert listed["admin"]["revoked_at"] is None


def test_revoking_an_unknown_key_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.delete("/v1/keys/nobody", headers=admin)
    assert response.status_code == 404
    assert problem_mismatch(response, 404) is None


def test_a_key_created_over_the_api_works_with_its_role_and_sites(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    created = client.post(
        "/v1/keys",
        json={"name": "form-site-2", "role": "submitter", "sites": ["site-2"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["name"], body["role"], body["sites"]) == ("form-site-2", "submitter", ["site-2"])
    token = bearer(body["key"])
    assert client.get("/v1/surveys/trust", headers=token).status_code == 200
    assert client.get("/v1/surveys/trust/responses", headers=token).status_code == 403
    assert (
        client.post("/v1/surveys/trust/responses", json=submission(), headers=token).status_code
        == 403
    )
    duplicate = client.post(
        "/v1/keys", json={"name": "form-site-2", "role": "reader"}, headers=admin
    )
    assert duplicate.status_code == 409


# --- keys are stored hashed -------------------------------------------------------


def test_keys_are_stored_hashed_and_never_listed(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], db_url: str
) -> None:
    tokens = [make_key(role) for role in ROLES]
    for role in ROLES:
        created = client.post("/v1/keys", json={"name": f"api-{role}", "role": role}, headers=admin)
        assert created.status_code == 201, created.text
        tokens.append(created.json()["key"])
    assert len(set(tokens)) == len(tokens)

    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM api_key")).mappings().all()
    finally:
        engine.dispose()
    assert len(rows) == 2 * len(ROLES) + 1  # and the `admin` fixture's key
    for row in rows:
        for column, value in row.items():
            for token in tokens:
                assert token not in str(value), f"column {column} holds a token"

    listed = client.get("/v1/keys", headers=admin)
    assert listed.status_code == 200
    for token in tokens:
        assert token not in listed.text
    assert all("key" not in item for item in listed.json())
    assert {item["name"] for item in listed.json()} >= {f"api-{role}" for role in ROLES}


# Contract §2, written out here so that a change to the permissions table is a change to
# this test too, made on purpose.
CONTRACT_ROLES: dict[str, set[Action]] = {
    "admin": set(Action),
    "evaluator": set(Action)
    - {
        Action.manage_surveys,
        Action.erase_responses,
        Action.manage_keys,
        Action.read_audit,
        Action.submit_responses,
        Action.withdraw_releases,
    },
    "coder": {Action.read_surveys, Action.read_codebooks, Action.code, Action.read_suggestions},
    "submitter": {Action.read_surveys, Action.submit_responses},
    "reader": {Action.read_releases, Action.read_events, Action.manage_webhooks},  # §7.6, §9
}


def test_the_permissions_table_is_the_contracts() -> None:
    assert set(PERMISSIONS) == set(Action)
    for action, roles in PERMISSIONS.items():
        expected = {role for role, actions in CONTRACT_ROLES.items() if action in actions}
        assert {r.value for r in roles} == expected, action


def test_every_action_guards_an_endpoint() -> None:
    """Each action of the table is exercised by the matrix below through some endpoint."""
    assert {r.action for r in RULES.values()} == set(PERMISSIONS)
