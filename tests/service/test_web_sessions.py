"""Browser sessions (service/web_sessions.py): a session is only as good as its key."""

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from schemas.base import utcnow
from schemas.keys import ApiKey, KeyCreate, Role
from schemas.web_sessions import WebSession
from service import web_sessions
from service.database import Database
from service.errors import Unauthenticated
from service.key_cache import KEYS
from service.keys import create_key, hash_token


def _key(database: Database, name: str) -> str:
    with database.session() as session:
        _, token = create_key(session, data=KeyCreate(name=name, role=Role.coder))
    return token


def test_a_session_lives_while_its_key_and_its_time_do(database: Database) -> None:
    key = _key(database, "sam")
    with database.session() as session:
        principal, token = web_sessions.sign_in(session, api_key=key)
    assert principal.name == "sam"
    with database.session() as session:
        assert web_sessions.principal_of(session, token=token).name == "sam"
        stored = session.get(WebSession, 1)
        assert stored is not None
        assert stored.token_hash == hash_token(token)
    # Past its end: refused, then pruned by the next sign-in.
    with database.session() as session:
        session.execute(update(WebSession).values(expires_at=utcnow() - timedelta(seconds=1)))
    with database.session() as session, pytest.raises(Unauthenticated):
        web_sessions.principal_of(session, token=token)
    with database.session() as session:
        _, fresh = web_sessions.sign_in(session, api_key=key)
    with database.session() as session:
        assert [w.token_hash for w in session.exec(select(WebSession))] == [hash_token(fresh)]
        # The key expires: its session ends with it.
        session.execute(
            update(ApiKey)
            .where(col(ApiKey.name) == "sam")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    KEYS.forget(hash_token(key))
    with database.session() as session, pytest.raises(Unauthenticated):
        web_sessions.principal_of(session, token=fresh)


def test_sign_out_deletes_the_session_and_csrf_tokens_are_bound_to_it(database: Database) -> None:
    key = _key(database, "sue")
    with database.session() as session:
        _, token = web_sessions.sign_in(session, api_key=key)
    csrf = web_sessions.csrf_token(token)
    assert web_sessions.csrf_matches(token, csrf)
    assert not web_sessions.csrf_matches(token, web_sessions.csrf_token(token + "x"))
    assert not web_sessions.csrf_matches(token, None)
    with database.session() as session:
        assert web_sessions.sign_out(session, token=token)
    with database.session() as session, pytest.raises(Unauthenticated):
        web_sessions.principal_of(session, token=token)
    with database.session() as session, pytest.raises(Unauthenticated):
        web_sessions.sign_in(session, api_key="hm_nothing")
