"""The event feed (contract §9): an event for every write path, in the transaction of the
change; cursors, filters, scoping, long polls, erasure scrubbing and retention."""

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text, update

from api.app import create_app
from schemas.base import utcnow
from schemas.events import Event
from service.database import Database
from service.events import feed
from service.settings import Settings
from tests.conftest import CODEBOOK_THEMES, MakeKey, assert_problem, bearer, submission
from tests.fixtures.releases import publish_release

Headers = dict[str, str]


def events(client: TestClient, headers: Headers, **params: Any) -> list[dict[str, Any]]:
    """Every event the key can read, following next_cursor to the end."""
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, "limit": 3}
        if cursor is not None:
            query["after"] = cursor
        page = client.get("/v1/events", params=query, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        assert isinstance(body["next_cursor"], str)
        assert body["next_cursor"]
        items += body["items"]
        if not body["items"]:
            return items
        cursor = body["next_cursor"]


def db_rows(db_url: str, sql: str) -> list[Any]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    finally:
        engine.dispose()


def test_every_write_path_records_its_event(
    client: TestClient, admin: Headers, survey: dict[str, Any]
) -> None:
    created = client.post(
        "/v1/surveys/trust/responses", json=submission(trust_actions="Listen."), headers=admin
    )
    assert created.status_code == 201
    rows = (
        b'{"site": "site-2", "wave": "midway", "submitted_at": "2015-08-02T10:00:00Z",'
        b' "answers": {"role": "health", "trust_confidence": 2}}\n'
    ) * 2
    imported = client.post(
        "/v1/surveys/trust/responses:import",
        content=rows,
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert imported.json() == {"imported": 2}
    book = {"question": "trust_actions", "themes": CODEBOOK_THEMES}
    path = "/v1/surveys/trust/codebooks/trust_actions"
    assert client.put(path, json=book, headers=admin).status_code == 200
    assert client.put(path, json=book, headers=admin).status_code == 200
    response_id = created.json()["id"]
    codings = f"/v1/surveys/trust/responses/{response_id}/codings/trust_actions"
    coded = client.put(codings, json={"categories": ["rapport"]}, headers=admin)
    assert coded.status_code == 200
    resolved = client.put(codings + "/consensus", json={"categories": ["time"]}, headers=admin)
    assert resolved.status_code == 200
    renamed = {**survey, "title": "Renamed"}
    for field in ("version", "created_at", "updated_at"):
        renamed.pop(field, None)
    assert client.put("/v1/surveys/trust", json=renamed, headers=admin).status_code == 200

    feed_items = events(client, admin)
    assert [e["type"] for e in feed_items] == [
        "survey.created",
        "response.created",
        "response.created",
        "response.created",
        "codebook.changed",
        "codebook.changed",
        "coding.changed",
        "coding.changed",
        "survey.changed",
    ]
    first = feed_items[1]
    assert first["data"] == created.json()
    assert (first["survey"], first["site"], first["wave"]) == ("trust", "site-1", "midway")
    assert [e["site"] for e in feed_items[2:4]] == ["site-2", "site-2"]
    assert feed_items[4]["data"] == {"question": "trust_actions"}
    assert feed_items[4]["site"] is None
    assert feed_items[6]["data"] == {
        "response_id": response_id,
        "question": "trust_actions",
        "status": "single",
        "effective": ["rapport"],
    }
    assert feed_items[6]["site"] == "site-1"
    assert feed_items[7]["data"]["status"] == "resolved"
    assert feed_items[7]["data"]["effective"] == ["time"]
    assert feed_items[0]["data"] == {"id": "trust"}
    assert feed_items[8]["data"] == {"id": "trust"}
    assert len({e["id"] for e in feed_items}) == len(feed_items)


def test_erasure_scrubs_the_created_event_and_records_its_own(
    client: TestClient, admin: Headers, survey: dict[str, Any], db_url: str
) -> None:
    secret = "A secret only the respondent wrote"
    kept = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin).json()
    gone = client.post(
        "/v1/surveys/trust/responses", json=submission(trust_actions=secret), headers=admin
    ).json()
    erased = client.delete(f"/v1/surveys/trust/responses/{gone['id']}", headers=admin)
    assert erased.status_code == 204
    items = events(client, admin, type="response.created")
    assert [e["data"] for e in items] == [kept, {"id": gone["id"], "erased": True}]
    erasures = events(client, admin, type="response.erased")
    assert [(e["data"], e["site"]) for e in erasures] == [({"id": gone["id"]}, "site-1")]
    stored = db_rows(db_url, "SELECT data FROM event")
    assert all(secret not in str(row) for row in stored)


def test_a_change_that_fails_records_no_event(
    client: TestClient, admin: Headers, survey: dict[str, Any]
) -> None:
    before = events(client, admin)
    duplicate = client.post("/v1/surveys", json={**survey, "id": "trust"}, headers=admin)
    assert duplicate.status_code in (409, 422)
    bad = b'{"site": "site-1", "wave": "midway", "submitted_at": "2015-08-02T10:00:00Z",'
    bad += b' "answers": {}}\n'
    good = (
        b'{"site": "site-1", "wave": "midway", "submitted_at": "2015-08-02T10:00:00Z",'
        b' "answers": {"role": "police", "trust_confidence": 4}}\n'
    )
    refused = client.post(
        "/v1/surveys/trust/responses:import",
        content=good + bad,
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert refused.status_code == 422
    assert events(client, admin) == before


def test_cursor_pages_filters_and_a_cursor_that_never_is_null(
    client: TestClient, admin: Headers, survey: dict[str, Any]
) -> None:
    for _ in range(4):
        assert client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    page = client.get("/v1/events", params={"limit": 2}, headers=admin).json()
    assert [e["type"] for e in page["items"]] == ["survey.created", "response.created"]
    rest = client.get(
        "/v1/events", params={"after": page["next_cursor"], "limit": 10}, headers=admin
    ).json()
    assert [e["type"] for e in rest["items"]] == ["response.created"] * 3
    end = client.get("/v1/events", params={"after": rest["next_cursor"]}, headers=admin).json()
    assert end == {"items": [], "next_cursor": rest["next_cursor"]}
    assert len(events(client, admin, type="survey.created")) == 1
    assert events(client, admin, survey="other") == []
    assert len(events(client, admin, survey="trust", type="response.created")) == 4
    later = client.post("/v1/surveys/trust/responses", json=submission(), headers=admin).json()
    after_end = client.get("/v1/events", params={"after": end["next_cursor"]}, headers=admin).json()
    assert [e["data"]["id"] for e in after_end["items"]] == [later["id"]]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"wait": 31}, ["query", "wait"]),
        ({"wait": -1}, ["query", "wait"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"type": "nonsense"}, ["query", "type", 0]),
        ({"after": "not-a-cursor"}, ["query", "cursor"]),
    ],
)
def test_bad_feed_parameters_are_422(
    client: TestClient, admin: Headers, params: dict[str, Any], loc: list[Any]
) -> None:
    assert_problem(client.get("/v1/events", params=params, headers=admin), 422, loc)


def test_scoping_readers_see_releases_and_site_keys_their_sites(
    client: TestClient, admin: Headers, make_key: MakeKey, survey: dict[str, Any]
) -> None:
    for site in ("site-1", "site-2"):
        body = {**submission(), "site": site}
        assert client.post("/v1/surveys/trust/responses", json=body, headers=admin)
    publish_release(client, admin, "everywhere")
    publish_release(client, admin, "site-1-only", site=["site-1"])
    publish_release(client, admin, "site-2-only", site=["site-2"])
    assert client.delete("/v1/surveys/trust/releases/site-1-only", headers=admin)
    reader = bearer(make_key("reader"))
    assert [(e["type"], e["data"]["id"]) for e in events(client, reader)] == [
        ("release.published", "everywhere"),
        ("release.published", "site-1-only"),
        ("release.published", "site-2-only"),
        ("release.withdrawn", "site-1-only"),
    ]
    assert events(client, reader, type="response.created") == []
    # a key bound to sites reads the events of the releases it may read, no others:
    # another site's release title is not for it
    site1_reader = bearer(make_key("reader", sites=["site-1"]))
    assert [(e["type"], e["data"]["id"]) for e in events(client, site1_reader)] == [
        ("release.published", "site-1-only"),
        ("release.withdrawn", "site-1-only"),
    ]
    site2 = bearer(make_key("evaluator", sites=["site-2"]))
    seen = events(client, site2)
    assert [(e["type"], e["site"], e["data"].get("title")) for e in seen] == [
        ("survey.created", None, None),
        ("response.created", "site-2", None),
        ("release.published", None, "Release site-2-only"),
    ]
    both = bearer(make_key("reader", sites=["site-1", "site-2"]))
    assert [e["data"]["id"] for e in events(client, both)] == [
        "site-1-only",
        "site-2-only",
        "site-1-only",
    ]
    for role in ("coder", "submitter"):
        assert_problem(client.get("/v1/events", headers=bearer(make_key(role))), 403)


def test_a_long_poll_waits_and_wakes_on_a_commit(
    client: TestClient, admin: Headers, survey: dict[str, Any]
) -> None:
    cursor = client.get("/v1/events", headers=admin).json()["next_cursor"]
    started = time.monotonic()
    empty = client.get("/v1/events", params={"after": cursor, "wait": 1}, headers=admin)
    assert empty.status_code == 200
    assert empty.json() == {"items": [], "next_cursor": cursor}
    assert 0.9 <= time.monotonic() - started < 5

    answered: dict[str, Any] = {}

    def poll() -> None:
        t0 = time.monotonic()
        page = client.get("/v1/events", params={"after": cursor, "wait": 20}, headers=admin)
        answered.update(elapsed=time.monotonic() - t0, body=page.json())

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    assert client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    thread.join()
    assert [e["type"] for e in answered["body"]["items"]] == ["response.created"]
    assert answered["elapsed"] < 5


def test_retention_prunes_in_batches_and_an_older_cursor_is_410(
    client: TestClient, admin: Headers, survey: dict[str, Any], database: Database
) -> None:
    for _ in range(3):
        assert client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    first = client.get("/v1/events", params={"limit": 1}, headers=admin).json()
    second = client.get(
        "/v1/events", params={"limit": 2, "after": first["next_cursor"]}, headers=admin
    ).json()
    old = utcnow() - timedelta(days=91)
    with database.session() as session:
        positions = sorted(session.execute(text("SELECT position FROM event")).scalars())
        session.execute(
            update(Event).where(Event.position.in_(positions[:3])).values(occurred_at=old)  # type: ignore[union-attr]
        )
    with database.session() as session:
        assert feed.prune(session, retention_days=90) == 3
        assert feed.prune(session, retention_days=90) == 0
    gone = client.get("/v1/events", params={"after": first["next_cursor"]}, headers=admin)
    assert_problem(gone, 410)
    fine = client.get("/v1/events", params={"after": second["next_cursor"]}, headers=admin)
    assert fine.status_code == 200
    assert len(fine.json()["items"]) == 1
    assert len(events(client, admin)) == 1  # a new follower starts at what is kept


def test_a_server_that_delivers_no_webhooks_still_prunes_its_feed(
    client: TestClient,
    admin: Headers,
    survey: dict[str, Any],
    settings: Settings,
    database: Database,
) -> None:
    assert not settings.webhook_dispatch  # the fixture's app runs no dispatcher
    for _ in range(3):
        assert client.post("/v1/surveys/trust/responses", json=submission(), headers=admin)
    old = utcnow() - timedelta(days=settings.event_retention_days + 1)
    with database.session() as session:
        positions = sorted(session.execute(text("SELECT position FROM event")).scalars())
        session.execute(
            update(Event).where(Event.position.in_(positions[:2])).values(occurred_at=old)  # type: ignore[union-attr]
        )
    kept = len(positions) - 2
    # A server process prunes at start (then every few minutes), dispatching or not.
    with TestClient(create_app(settings, database=database)):
        deadline = time.monotonic() + 10
        while len(db_rows(settings.database_url, "SELECT pk FROM event")) > kept:
            assert time.monotonic() < deadline, "the old events were not pruned"
            time.sleep(0.05)
    assert len(db_rows(settings.database_url, "SELECT pk FROM event")) == kept
    assert len(events(client, admin)) == kept
