"""Sessions of the browser workbench (/app): an API key, typed once into the sign-in
form, becomes a random session token held in an HttpOnly cookie; the key itself is never
kept by the browser.

A session is only as good as its key: every use reads the key again and applies the one
liveness rule (`keys.check_live`), so revoking or expiring the key ends its sessions at
once. Sessions also end at sign-out (the row is deleted: a replayed cookie finds
nothing) and after `SESSION_HOURS`. The CSRF token of a session is derived from its
token (HMAC), so it needs no storage and cannot be guessed without the cookie.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.keys import ApiKey, Role
from schemas.web_sessions import WebSession
from service.errors import Unauthenticated
from service.keys import Principal, authenticate, check_live, hash_token

SESSION_HOURS = 12


def csrf_token(session_token: str) -> str:
    """The CSRF token of the forms of one session (or of one sign-in form)."""
    return hmac.new(session_token.encode(), b"hearme-csrf", hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, submitted: str | None) -> bool:
    return submitted is not None and hmac.compare_digest(csrf_token(session_token), submitted)


def sign_in(session: Session, *, api_key: str) -> tuple[Principal, str]:
    """A new session for a live key (401 otherwise); returns the caller and the session
    token, which only the cookie will hold."""
    principal = authenticate(session, token=api_key.strip() or None)
    prune(session)  # sessions past their end go when new ones come
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            key_id=principal.key_id,
            expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
        )
    )
    session.flush()
    return principal, token


_SESSION_KEY = select(WebSession, ApiKey).join(ApiKey, col(ApiKey.id) == col(WebSession.key_id))


def principal_of(session: Session, *, token: str | None) -> Principal:
    """The caller of a session cookie: 401 when there is none, it has ended, or its key no
    longer works."""
    if not token:
        raise Unauthenticated("not signed in")
    row = session.exec(_SESSION_KEY.where(col(WebSession.token_hash) == hash_token(token))).first()
    if row is None:
        raise Unauthenticated("this session has ended")
    web, key = row
    if web.expires_at <= utcnow():
        raise Unauthenticated("this session has expired")
    check_live(key)
    assert key.id is not None
    sites = frozenset(key.sites) if key.sites is not None else None
    return Principal(key_id=key.id, name=key.name, role=Role(key.role), sites=sites)


def sign_out(session: Session, *, token: str | None) -> bool:
    """End the session of this token; True if there was one."""
    if not token:
        return False
    result = session.execute(
        delete(WebSession).where(col(WebSession.token_hash) == hash_token(token))
    )
    return bool(getattr(result, "rowcount", 0))


def prune(session: Session) -> int:
    """Delete the sessions past their end."""
    result = session.execute(delete(WebSession).where(col(WebSession.expires_at) <= utcnow()))
    return int(getattr(result, "rowcount", 0) or 0)
