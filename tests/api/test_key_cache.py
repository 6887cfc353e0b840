"""Authentication on the hot path (`service.key_cache`): no database round trip for a
key verified less than a second ago, expiry checked from the cache, revocation here
taking effect at once; the survey read once per submission."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from service.database import Database
from service.key_cache import KeyCache
from tests.conftest import MakeKey, bearer, submission


@pytest.fixture
def statements(database: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(database.engine, "before_cursor_execute", record)
    yield seen
    event.remove(database.engine, "before_cursor_execute", record)


def test_a_cached_key_submits_without_reading_keys_and_reads_the_survey_once(
    client: TestClient,
    make_key: MakeKey,
    survey: dict[str, Any],
    statements: list[str],
) -> None:
    submitter = bearer(make_key("submitter"))
    first = client.post("/v1/surveys/trust/responses", json=submission(), headers=submitter)
    assert first.status_code == 201, first.text
    statements.clear()
    again = client.post("/v1/surveys/trust/responses", json=submission(), headers=submitter)
    assert again.status_code == 201, again.text
    assert [s for s in statements if "api_key" in s] == []
    assert len([s for s in statements if "FROM survey" in s]) == 1


def test_a_key_revoked_here_is_refused_at_once(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    doomed = bearer(make_key("submitter", name="doomed"))
    post = client.post("/v1/surveys/trust/responses", json=submission(), headers=doomed)
    assert post.status_code == 201
    assert client.delete("/v1/keys/doomed", headers=admin).status_code == 204
    refused = client.post("/v1/surveys/trust/responses", json=submission(), headers=doomed)
    assert refused.status_code == 401


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _put(cache: KeyCache, expires_at: datetime | None = None) -> None:
    cache.put("h", key_id=1, name="k", role="submitter", sites=None, expires_at=expires_at)


def test_an_entry_is_trusted_for_less_than_the_ttl() -> None:
    clock = Clock()
    cache = KeyCache(ttl=1.0, clock=clock)
    _put(cache)
    clock.now += 0.999
    assert cache.fresh("h") is not None
    clock.now += 0.001
    assert cache.fresh("h") is None


def test_an_expired_key_is_not_fresh_however_recently_read() -> None:
    cache = KeyCache(ttl=1.0, clock=Clock())
    _put(cache, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert cache.fresh("h") is None
    _put(cache, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert cache.fresh("h") is not None


def test_the_cache_is_bounded() -> None:
    cache = KeyCache(ttl=1.0, max_entries=2, clock=Clock())
    for name in ("a", "b", "c"):
        cache.put(name, key_id=1, name=name, role="reader", sites=None, expires_at=None)
    assert cache.fresh("a") is None
    assert cache.fresh("c") is not None
