"""The workbench's pages over HTTP (issue 14): sessions, cookies, CSRF, CSP, audit, and
who sees what. The browser itself drives them in tests/server/test_web_browser.py."""

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from service.database import Database
from service.settings import Settings
from tests.conftest import MakeKey, bearer, early_in_a_rate_window, submission
from tests.fixtures.web import WebUser, csrf_of, web_codebook

SURVEY = "/v1/surveys/trust"
CODE = "/app/surveys/trust/code/trust_actions"
Headers = dict[str, str]


@pytest.fixture
def coded(client: TestClient, admin: Headers, survey: dict[str, Any]) -> list[str]:
    put = client.put(f"{SURVEY}/codebooks/trust_actions", json=web_codebook(), headers=admin)
    assert put.status_code == 200, put.text
    ids = []
    for words in ("Listen to the child.", "Take time, build rapport.", "Be there."):
        made = client.post(
            f"{SURVEY}/responses", json=submission(trust_actions=words), headers=admin
        )
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
    return ids


def user(client: TestClient) -> WebUser:
    """A browser of its own (its own cookies) on the app the fixture started."""
    return WebUser(TestClient(client.app))


def rows(db_url: str, sql: str) -> list[Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(text(sql)))
    finally:
        engine.dispose()


def test_sign_in_gives_a_strict_cookie_and_the_key_stays_out_of_pages(
    client: TestClient, make_key: MakeKey, db_url: str
) -> None:
    key = make_key("evaluator", name="eve")
    browser = user(client)
    signed = browser.sign_in(key)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/app/"
    cookie = next(c for c in signed.headers.get_list("set-cookie") if "hearme_session=" in c)
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert {"httponly", "samesite=strict", "path=/app"} <= flags
    assert "secure" not in flags  # plain http here
    token = cookie.split(";")[0].split("=", 1)[1]
    home = browser.get("/app/")
    assert home.status_code == 200
    assert "eve" in home.text
    assert key not in home.text
    assert token not in home.text
    stored = rows(db_url, "SELECT token_hash FROM web_session")
    assert len(stored) == 1
    assert stored[0][0] not in (token, key)
    assert len(stored[0][0]) == 64
    behind_tls = TestClient(client.app, headers={"X-Forwarded-Proto": "https"})
    form = behind_tls.get("/app/sign-in")
    assert all("; secure" in c.lower() for c in form.headers.get_list("set-cookie"))


def test_pages_carry_a_strict_content_security_policy(
    client: TestClient, make_key: MakeKey, coded: list[str]
) -> None:
    browser = user(client)
    browser.sign_in(make_key("evaluator"))
    for url in ("/app/sign-in", "/app/", "/app/surveys/trust/dashboard", CODE):
        page = browser.get(url)
        assert page.status_code == 200, (url, page.text[:300])
        policy = page.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'", url
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert "unsafe" not in policy
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text  # every script is a file


def test_a_form_without_its_csrf_token_is_refused(
    client: TestClient, make_key: MakeKey, coded: list[str], admin: Headers
) -> None:
    browser = user(client)
    form = browser.get("/app/sign-in")
    refused = browser.post("/app/sign-in", [("key", make_key("coder", name="cody"))], csrf=None)
    assert refused.status_code == 403
    assert browser.get("/app/").status_code == 303  # not signed in
    browser.post("/app/sign-in", [("key", make_key("coder", name="cora"))], csrf=csrf_of(form.text))
    assert browser.get("/app/").status_code == 200
    for csrf in (None, "", "0" * 64):
        saved = browser.post(
            CODE, [("response_id", coded[0]), ("category", "listening")], csrf=csrf
        )
        assert saved.status_code == 403, saved.text
        assert browser.post("/app/sign-out", [], csrf=csrf).status_code == 403
    codings = client.get(f"{SURVEY}/responses/{coded[0]}/codings/trust_actions", headers=admin)
    assert codings.json()["codings"] == []
    assert browser.get("/app/").status_code == 200  # still signed in


def test_save_and_next_stores_the_coding_and_shows_the_next_answer(
    client: TestClient, make_key: MakeKey, coded: list[str], admin: Headers
) -> None:
    browser = user(client)
    browser.sign_in(make_key("coder", name="cara"))
    first = browser.get(CODE)
    assert "<mark>Listen</mark> to the child." in first.text
    assert "0 of 3" in first.text
    assert "<mark>Listen</mark>" in first.text  # the keyword of a suggested category
    saved = browser.post(
        CODE, [("response_id", coded[0]), ("category", "listening")], csrf=csrf_of(first.text)
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == CODE
    codings = client.get(f"{SURVEY}/responses/{coded[0]}/codings/trust_actions", headers=admin)
    assert [(c["coder"], c["categories"]) for c in codings.json()["codings"]] == [
        ("cara", ["listening"])
    ]
    second = browser.get(CODE)
    assert "<mark>rapport</mark>." in second.text
    assert "1 of 3" in second.text
    bad = browser.post(
        CODE, [("response_id", coded[1]), ("category", "nonsense")], csrf=csrf_of(second.text)
    )
    assert bad.status_code == 422
    assert "text/html" in bad.headers["content-type"]


def test_a_coder_never_sees_another_coders_codes(
    client: TestClient, make_key: MakeKey, coded: list[str]
) -> None:
    first = make_key("coder", name="first-coder")
    code = client.put(
        f"{SURVEY}/responses/{coded[2]}/codings/trust_actions",
        json={"categories": ["time"]},
        headers=bearer(first),
    )
    assert code.status_code == 200
    browser = user(client)
    browser.sign_in(make_key("coder", name="second-coder"))
    again = browser.get(CODE + "?second=1")
    assert "Be there." in again.text  # coded by the other, offered for double coding
    assert "first-coder" not in again.text
    assert "checked" not in again.text
    assert browser.get("/app/surveys/trust/review/trust_actions").status_code == 403
    assert browser.get("/app/surveys/trust/dashboard").status_code == 403


def test_a_reader_sees_releases_and_no_dashboard(
    client: TestClient, make_key: MakeKey, coded: list[str], admin: Headers
) -> None:
    release = {
        "id": "r1",
        "title": "First release",
        "tables": [{"id": "roles", "kind": "composition", "question": "role"}],
    }
    assert client.post(f"{SURVEY}/releases", json=release, headers=admin).status_code == 201
    browser = user(client)
    browser.sign_in(make_key("reader"))
    home = browser.get("/app/")
    assert "First release" in home.text
    assert "/app/surveys/trust/releases/r1" in home.text
    report = browser.get("/app/surveys/trust/releases/r1")
    assert report.status_code == 200
    assert "First release" in report.text
    for url in ("/app/surveys/trust/dashboard", CODE, "/app/surveys/trust/download/export.csv"):
        assert browser.get(url).status_code == 403, url


def test_revoking_the_key_ends_its_sessions(
    client: TestClient, make_key: MakeKey, admin: Headers
) -> None:
    browser = user(client)
    browser.sign_in(make_key("evaluator", name="doomed"))
    assert browser.get("/app/").status_code == 200
    assert client.delete("/v1/keys/doomed", headers=admin).status_code == 204
    ended = browser.get("/app/")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/app/sign-in"


def test_sign_out_ends_the_session_for_a_replayed_cookie_too(
    client: TestClient, make_key: MakeKey, db_url: str
) -> None:
    browser = user(client)
    signed = browser.sign_in(make_key("evaluator"))
    cookie = signed.cookies["hearme_session"]
    assert browser.sign_out().status_code == 303
    assert rows(db_url, "SELECT count(*) FROM web_session")[0][0] == 0
    replay = TestClient(client.app, cookies={"hearme_session": cookie})
    answer = replay.get("/app/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app/sign-in"


def test_sign_ins_are_audited_and_failures_rate_limited(
    settings: Settings, database: Database, make_key: MakeKey, db_url: str
) -> None:
    limited = settings.model_copy(update={"auth_failure_limit": 5})
    with TestClient(create_app(limited, database=database)) as client:
        early_in_a_rate_window()
        browser = WebUser(client)
        browser.sign_in(make_key("evaluator", name="audited"))
        browser.sign_out()
        statuses = [browser.sign_in("hm_not-a-key").status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    actions = rows(db_url, "SELECT action, key, status FROM audit_record ORDER BY id")
    assert ("session.sign_in", "audited", 303) in actions
    assert ("session.sign_out", "audited", 303) in actions
    assert ("session.sign_in", None, 401) in actions
