"""Webhooks (contract §9) delivered by the app's own dispatcher to real receivers on
127.0.0.1: signatures, retries after errors and time-outs, `failed` after the schedule,
the retry endpoint, owners, scoping, erasure, redirects and the address guard."""

import itertools
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from standardwebhooks.webhooks import Webhook as Verifier

from api.app import create_app
from service.database import Database
from service.events import secrets, ssrf
from service.events.delivery import (
    Claimed,
    ClaimRoom,
    Planned,
    Withdrawn,
    apply_fan_out,
    plan_fan_out,
    step,
)
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer, submission, survey_definition
from tests.fixtures.receiver import Receiver, receiver
from tests.fixtures.releases import publish_release
from tests.fixtures.waiting import until

Headers = dict[str, str]


@pytest.fixture
def hook_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "webhook_allow_private": True,
            "webhook_dispatch": True,
            "webhook_retry_schedule": [1, 1],
            "webhook_timeout": 1.0,
            "secret_key": "test-secret-key-of-some-length",
        }
    )


@pytest.fixture
def hooks(hook_settings: Settings, database: Database) -> Iterator[TestClient]:
    with TestClient(create_app(hook_settings, database=database)) as client:
        yield client


@pytest.fixture
def admin_key(make_key: MakeKey) -> Headers:
    return bearer(make_key("admin", name="admin"))


@pytest.fixture
def trust(hooks: TestClient, admin_key: Headers) -> None:
    assert hooks.post("/v1/surveys", json=survey_definition(), headers=admin_key).status_code == 201


@pytest.fixture
def sink() -> Iterator[Receiver]:
    with receiver() as state:
        yield state


def subscribe(client: TestClient, headers: Headers, url: str, events: list[str]) -> dict[str, Any]:
    created = client.post("/v1/webhooks", json={"url": url, "events": events}, headers=headers)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def deliveries(client: TestClient, headers: Headers, hook: str, **params: Any) -> list[Any]:
    listed = client.get(f"/v1/webhooks/{hook}/deliveries", params=params, headers=headers)
    assert listed.status_code == 200, listed.text
    items: list[Any] = listed.json()["items"]
    return items


def test_a_delivery_is_signed_per_standard_webhooks_and_listed(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver, db_url: str
) -> None:
    hook = subscribe(hooks, admin_key, sink.url, ["response.created"])
    assert hook["secret"].startswith("whsec_")
    assert (hook["owner"], hook["events"]) == ("admin", ["response.created"])
    created = hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    (request,) = sink.wait_for(1)
    payload = Verifier(hook["secret"]).verify(request.body, request.headers)
    feed = hooks.get("/v1/events", params={"type": "response.created"}, headers=admin_key)
    assert payload == feed.json()["items"][0]
    assert payload["data"] == created.json()
    assert request.headers["webhook-id"] == payload["id"]
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    with pytest.raises(Exception, match="signature"):
        Verifier("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    (delivery,) = until(
        lambda: [d for d in deliveries(hooks, admin_key, hook["id"]) if d["status"] == "delivered"]
    )
    assert delivery["event_id"] == payload["id"]
    assert (delivery["attempts"], delivery["last_status_code"]) == (1, 200)
    # the secret is shown once: never listed, never stored
    listed = hooks.get("/v1/webhooks", headers=admin_key)
    assert hook["secret"] not in listed.text
    assert [w["id"] for w in listed.json()] == [hook["id"]]
    engine = create_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM webhook")).all()
    engine.dispose()
    assert hook["secret"] not in str(rows)
    assert hook["secret"].removeprefix("whsec_") not in str(rows)


def test_retries_after_500s_and_time_outs_then_delivers(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver
) -> None:
    answers = {0: (500, 0.0), 1: (200, 1.5)}  # a 500, then an answer after the time-out
    sink.answer = lambda n: answers.get(n, (200, 0.0))
    hook = subscribe(hooks, admin_key, sink.url, ["*"])
    hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    got = sink.wait_for(3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    gaps = [b.at - a.at for a, b in itertools.pairwise(got)]
    assert all(gap >= 0.85 for gap in gaps), gaps  # the schedule's 1 s, jittered by 10%
    (delivery,) = until(
        lambda: [d for d in deliveries(hooks, admin_key, hook["id"]) if d["status"] == "delivered"]
    )
    assert delivery["attempts"] == 3
    assert delivery["last_status_code"] == 200


def test_failed_after_the_schedule_and_the_retry_endpoint(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver
) -> None:
    sink.answer = lambda n: (503, 0.0)
    hook = subscribe(hooks, admin_key, sink.url, ["response.created"])
    hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    (failed,) = until(lambda: deliveries(hooks, admin_key, hook["id"], status="failed"))
    assert failed["attempts"] == 3  # the first attempt and the schedule's two
    assert (failed["last_status_code"], failed["last_error"]) == (503, "HTTP 503")
    assert deliveries(hooks, admin_key, hook["id"], status="pending") == []
    assert len(sink.received()) == 3
    sink.answer = lambda n: (200, 0.0)
    path = f"/v1/webhooks/{hook['id']}/deliveries/{failed['event_id']}/retry"
    retried = hooks.post(path, headers=admin_key)
    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "pending"
    sink.wait_for(4)
    (done,) = until(lambda: deliveries(hooks, admin_key, hook["id"], status="delivered"))
    assert done["attempts"] == 4
    assert_problem(hooks.post(path.replace(failed["event_id"], "nope"), headers=admin_key), 404)


def test_a_revoked_owners_webhook_goes_silent(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver, make_key: MakeKey
) -> None:
    owner = bearer(make_key("evaluator", name="owner"))
    hook = subscribe(hooks, owner, sink.url, ["*"])
    hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    sink.wait_for(1)
    assert hooks.delete("/v1/keys/owner", headers=admin_key).status_code == 204
    hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    time.sleep(2.0)
    assert len(sink.received()) == 1
    assert len(deliveries(hooks, admin_key, hook["id"])) == 1


def test_webhooks_deliver_what_their_owner_may_read(
    hooks: TestClient, admin_key: Headers, trust: None, make_key: MakeKey
) -> None:
    with receiver() as site_sink, receiver() as reader_sink:
        site2 = bearer(make_key("evaluator", sites=["site-2"]))
        reader = bearer(make_key("reader"))
        subscribe(hooks, site2, site_sink.url, ["*"])
        subscribe(hooks, reader, reader_sink.url, ["*"])
        for site in ("site-1", "site-2"):
            body = {**submission(), "site": site}
            hooks.post("/v1/surveys/trust/responses", json=body, headers=admin_key)
        (request,) = site_sink.wait_for(1)
        assert orjson.loads(request.body)["site"] == "site-2"
        time.sleep(1.0)
        assert len(site_sink.received()) == 1
        assert reader_sink.received() == []  # readers get release events only


def test_a_site_bound_readers_webhook_delivers_the_releases_of_its_sites_only(
    hooks: TestClient, admin_key: Headers, trust: None, make_key: MakeKey, sink: Receiver
) -> None:
    reader = bearer(make_key("reader", sites=["site-1"]))
    subscribe(hooks, reader, sink.url, ["*"])
    for site in ("site-1", "site-2"):
        body = {**submission(), "site": site}
        hooks.post("/v1/surveys/trust/responses", json=body, headers=admin_key)
    publish_release(hooks, admin_key, "everywhere")
    publish_release(hooks, admin_key, "site-2-only", site=["site-2"])
    publish_release(hooks, admin_key, "site-1-only", site=["site-1"])
    (request,) = sink.wait_for(1)
    assert orjson.loads(request.body)["data"] == {
        "id": "site-1-only",
        "title": "Release site-1-only",
    }
    time.sleep(1.0)
    assert len(sink.received()) == 1


def test_owners_see_their_own_webhooks_and_admins_all(
    hooks: TestClient, admin_key: Headers, make_key: MakeKey, sink: Receiver
) -> None:
    a = bearer(make_key("evaluator"))
    b = bearer(make_key("reader"))
    mine = subscribe(hooks, a, sink.url, ["*"])
    theirs = subscribe(hooks, b, sink.url, ["release.published"])
    assert [w["id"] for w in hooks.get("/v1/webhooks", headers=a).json()] == [mine["id"]]
    assert {w["id"] for w in hooks.get("/v1/webhooks", headers=admin_key).json()} == {
        mine["id"],
        theirs["id"],
    }
    assert_problem(hooks.delete(f"/v1/webhooks/{theirs['id']}", headers=a), 404)
    assert_problem(hooks.get(f"/v1/webhooks/{theirs['id']}/deliveries", headers=a), 404)
    assert hooks.delete(f"/v1/webhooks/{mine['id']}", headers=a).status_code == 204
    assert hooks.get("/v1/webhooks", headers=a).json() == []
    assert_problem(hooks.delete(f"/v1/webhooks/{mine['id']}", headers=a), 404)


def test_a_pending_delivery_of_an_erased_response_carries_no_answers(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver
) -> None:
    sink.answer = lambda n: (500, 0.0) if n == 0 else (200, 0.0)
    subscribe(hooks, admin_key, sink.url, ["response.created"])
    secret = "Only the respondent wrote this"
    created = hooks.post(
        "/v1/surveys/trust/responses", json=submission(trust_actions=secret), headers=admin_key
    ).json()
    (first,) = sink.wait_for(1)
    assert secret in first.body.decode()
    erased = hooks.delete(f"/v1/surveys/trust/responses/{created['id']}", headers=admin_key)
    assert erased.status_code == 204
    second = sink.wait_for(2)[1]
    assert orjson.loads(second.body)["data"] == {"id": created["id"], "erased": True}


def test_redirects_are_not_followed(
    hooks: TestClient, admin_key: Headers, trust: None, sink: Receiver
) -> None:
    sink.answer = lambda n: (302, 0.0)
    hook = subscribe(hooks, admin_key, sink.url, ["response.created"])
    hooks.post("/v1/surveys/trust/responses", json=submission(), headers=admin_key)
    (pending,) = until(
        lambda: [
            d for d in deliveries(hooks, admin_key, hook["id"]) if d["last_status_code"] is not None
        ]
    )
    assert pending["last_status_code"] == 302
    assert "redirect" in pending["last_error"]
    assert {r.path for r in sink.received()} == {"/hook"}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost:8000/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.1/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://224.0.0.1/hook",
        "http://[::1]/hook",
        "http://[fe80::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "ftp://example.org/hook",
        "https://user:pw@example.org/hook",
        "not a url",
    ],
)
def test_the_address_guard_refuses_private_targets(
    client: TestClient, admin: Headers, url: str
) -> None:
    """Without HEARME_WEBHOOK_ALLOW_PRIVATE; nothing is sent anywhere."""
    refused = client.post("/v1/webhooks", json={"url": url, "events": ["*"]}, headers=admin)
    assert_problem(refused, 422, ["url"])
    with pytest.raises(ssrf.Refused):
        ssrf.resolve(url, allow_private=False)


def test_the_guard_connects_to_the_address_it_checked() -> None:
    target = ssrf.resolve("https://93.184.215.14:8443/a?b=1", allow_private=False)
    assert (target.address, target.port, target.path) == ("93.184.215.14", 8443, "/a?b=1")
    assert ssrf.resolve("http://127.0.0.1:9/x", allow_private=True).address == "127.0.0.1"


def test_bad_webhook_bodies_are_422(client: TestClient, admin: Headers) -> None:
    cases: list[tuple[dict[str, Any], list[str | int]]] = [
        ({"url": "https://example.org", "events": ["nope"]}, ["events", 0]),
        ({"url": "https://example.org", "events": []}, ["events"]),
        ({"events": ["*"]}, ["url"]),
    ]
    for body, loc in cases:
        assert_problem(client.post("/v1/webhooks", json=body, headers=admin), 422, loc)


def test_a_slow_receiver_does_not_hold_up_another_or_the_submissions(
    hook_settings: Settings, database: Database, make_key: MakeKey, sink: Receiver
) -> None:
    """The slow receiver answers nothing until the test has seen the rest, within a
    time-out far longer than the test: every submission and every delivery to the other
    receiver completing while it holds its attempts open shows that neither waits on it,
    with no timing bound for a loaded machine to miss."""
    patient = hook_settings.model_copy(update={"webhook_timeout": 90.0})
    admin = bearer(make_key("admin", name="admin"))
    with receiver() as slow, TestClient(create_app(patient, database=database)) as hooks:
        slow.gate.clear()
        try:
            assert hooks.post("/v1/surveys", json=survey_definition(), headers=admin).is_success
            subscribe(hooks, admin, slow.url, ["response.created"])
            subscribe(hooks, admin, sink.url, ["response.created"])
            for _ in range(10):
                created = hooks.post(
                    "/v1/surveys/trust/responses", json=submission(), headers=admin
                )
                assert created.status_code == 201
            assert len(sink.wait_for(10, timeout=30)) == 10
            assert len(slow.wait_for(1, timeout=30)) >= 1
        finally:
            slow.gate.set()


@pytest.fixture
def quiet(settings: Settings, database: Database) -> Iterator[TestClient]:
    """The app with no dispatcher of its own, taking webhooks to 127.0.0.1."""
    allowed = settings.model_copy(update={"webhook_allow_private": True})
    with TestClient(create_app(allowed, database=database)) as client:
        yield client


def test_attempts_held_in_memory_are_withdrawn_after_an_erasure_or_a_revocation(
    quiet: TestClient,
    database: Database,
    settings: Settings,
    make_key: MakeKey,
    sink: Receiver,
) -> None:
    """A dispatcher holds claimed attempts in memory ahead of a fast receiver (with their
    bodies). Every turn asks `step` which of them may no longer go out: the erased
    response's attempt and, once its owner is revoked, all of a webhook's."""
    owner_token = make_key("admin", name="owner")
    owner = bearer(owner_token)
    assert quiet.post("/v1/surveys", json=survey_definition(), headers=owner).status_code == 201
    subscribe(quiet, owner, sink.url, ["response.created"])
    ids = [
        quiet.post("/v1/surveys/trust/responses", json=submission(), headers=owner).json()["id"]
        for _ in range(2)
    ]
    key = secrets.server_key(settings)

    def turn(held: tuple[set[int], set[str]]) -> tuple[list[Claimed], Withdrawn]:
        with database.session() as session:
            room = ClaimRoom(key, limit=10, busy={}, lease=60.0)
            return step(session, results=[], schedule=[1], room=room, held=held)

    claimed, gone = turn((set(), set()))
    assert sorted(c.response_id or "" for c in claimed) == sorted(ids)
    assert gone == Withdrawn()
    held = ({c.webhook_pk for c in claimed}, {c.response_id for c in claimed if c.response_id})

    assert quiet.delete(f"/v1/surveys/trust/responses/{ids[0]}", headers=owner).status_code == 204
    claimed_now, gone = turn(held)
    assert claimed_now == []  # both attempts are still leased to this dispatcher
    assert gone == Withdrawn(webhooks=set(), responses={ids[0]})

    admin = bearer(make_key("admin", name="other-admin"))
    assert quiet.delete("/v1/keys/owner", headers=admin).status_code == 204
    _, gone = turn(held)
    assert gone.webhooks == held[0]
    assert sink.received() == []  # this test's dispatcher is the only one, and sent nothing


def test_a_fan_out_planned_twice_queues_its_events_once_and_none_for_a_revoked_owner(
    quiet: TestClient, database: Database, make_key: MakeKey
) -> None:
    """The fan-out reads in one transaction and writes in another (`plan_fan_out`,
    `apply_fan_out`): a plan whose webhook's cursor moved meanwhile (another process
    applied the same events) or whose owner was revoked meanwhile queues nothing."""
    owner = bearer(make_key("admin", name="owner"))
    assert quiet.post("/v1/surveys", json=survey_definition(), headers=owner).status_code == 201
    hook = subscribe(quiet, owner, "http://127.0.0.1:9/hook", ["response.created"])
    for _ in range(3):
        assert quiet.post(
            "/v1/surveys/trust/responses", json=submission(), headers=owner
        ).is_success

    def plan() -> list[Planned]:
        with database.session(write=False) as session:
            return plan_fan_out(session, claim=None)

    stale = plan()  # the three events
    assert quiet.post("/v1/surveys/trust/responses", json=submission(), headers=owner).is_success
    fresh = plan()  # the four
    with database.session() as session:
        assert len(apply_fan_out(session, fresh)) == 4
    with database.session() as session:
        assert apply_fan_out(session, stale) == []
    assert plan() == []  # the stale plan did not move the cursor back: nothing is behind
    assert len(deliveries(quiet, owner, hook["id"], status="pending")) == 4

    assert quiet.post("/v1/surveys/trust/responses", json=submission(), headers=owner).is_success
    late = plan()
    assert [len(p.rows) for p in late] == [1]
    admin = bearer(make_key("admin", name="other-admin"))
    assert quiet.delete("/v1/keys/owner", headers=admin).status_code == 204
    with database.session() as session:
        assert apply_fan_out(session, late) == []
    assert len(deliveries(quiet, admin, hook["id"], status="pending")) == 4
