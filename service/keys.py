"""API keys: random tokens, stored as SHA-256 hashes, each with one role and its sites.

A fast hash is the right tool here: tokens carry 256 bits of entropy, so there is
nothing for a slow password hash to protect against, and auth runs on every request.
"""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.keys import ApiKey, KeyCreate, Role
from service.database import after_commit
from service.errors import Conflict, Forbidden, NotFound, Unauthenticated
from service.key_cache import KEYS, CachedKey

TOKEN_PREFIX = "hm_"  # noqa: S105  (a marker for secret scanners, not a secret)


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's id, name, role and the sites it is bound to (None: all)."""

    key_id: int
    name: str
    role: Role
    sites: frozenset[str] | None

    def require(self, *roles: Role) -> None:
        if self.role not in roles:
            raise Forbidden(f"role {self.role.value!r} may not do this")

    def may_see_site(self, site: str) -> bool:
        return self.sites is None or site in self.sites

    def require_site(self, site: str) -> None:
        if not self.may_see_site(site):
            raise Forbidden(f"this key is not bound to site {site!r}")

    def visible_sites(self, requested: Iterable[str] = ()) -> list[str] | None:
        """The sites a query may cover: the requested ones (all must be allowed) or the
        key's own; None means no restriction."""
        wanted = list(requested)
        for site in wanted:
            self.require_site(site)
        if wanted:
            return wanted
        return None if self.sites is None else sorted(self.sites)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(session: Session, *, data: KeyCreate) -> tuple[ApiKey, str]:
    """Store a new key and return it with its token, which is never retrievable again."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        name=data.name,
        role=data.role.value,
        sites=sorted(set(data.sites)) if data.sites is not None else None,
        key_hash=hash_token(token),
        prefix=token[:10],
        expires_at=data.expires_at,
    )
    session.add(key)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"a key named {data.name!r} already exists") from exc
    return key, token


def free_key_name(session: Session, *, prefix: str) -> str:
    """The first of `prefix-1`, `prefix-2`, ... that no key has taken yet."""
    taken = set(session.exec(select(ApiKey.name).where(col(ApiKey.name).startswith(prefix))))
    return next(n for i in range(1, len(taken) + 2) if (n := f"{prefix}-{i}") not in taken)


# Built once: runs on every request, and a reused statement skips construction and keeps
# its cache key.
_KEY_BY_HASH = select(ApiKey).where(col(ApiKey.key_hash) == bindparam("key_hash"))


def check_live(key: ApiKey, *, now: datetime | None = None) -> None:
    """The one place that says whether a stored key still works: neither revoked nor
    expired (contract §11). The key cache (`service.key_cache`) holds `expires_at` and
    checks it on every use, so a key that expires while cached stops at its `expires_at`,
    not when the cache entry does."""
    if key.revoked_at is not None:
        raise Unauthenticated("unknown or revoked key")
    if key.expires_at is not None and key.expires_at <= (now or utcnow()):
        raise Unauthenticated("this key has expired")


def is_live(key: ApiKey, *, now: datetime | None = None) -> bool:
    try:
        check_live(key, now=now)
    except Unauthenticated:
        return False
    return True


def _principal(entry: CachedKey) -> Principal:
    return Principal(key_id=entry.key_id, name=entry.name, role=Role(entry.role), sites=entry.sites)


def cached_principal(token: str | None) -> Principal | None:
    """The caller from this process's key cache alone (no database); None when the key
    must be read (`authenticate`). 401 without a token."""
    if not token:
        raise Unauthenticated("missing bearer token")
    entry = KEYS.fresh(hash_token(token))
    return None if entry is None else _principal(entry)


def authenticate(session: Session, *, token: str | None) -> Principal:
    """The caller, from the key cache while its entry is fresh (`service.key_cache`: a
    revocation takes effect within 1 s everywhere, an expiry at once), else from the
    database."""
    if not token:
        raise Unauthenticated("missing bearer token")
    key_hash = hash_token(token)
    entry = KEYS.fresh(key_hash)  # None once expired: read, and refused
    if entry is None:
        key = session.exec(_KEY_BY_HASH, params={"key_hash": key_hash}).first()
        if key is None or key.id is None:
            KEYS.forget(key_hash)
            raise Unauthenticated("unknown or revoked key")
        try:
            check_live(key)
        except Unauthenticated:
            KEYS.forget(key_hash)
            raise
        entry = KEYS.put(
            key_hash,
            key_id=key.id,
            name=key.name,
            role=key.role,
            sites=frozenset(key.sites) if key.sites is not None else None,
            expires_at=key.expires_at,
        )
    return _principal(entry)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.name))))


def revoke_key(session: Session, *, principal: Principal, name: str) -> ApiKey:
    """Revoke a key. Refused (409) for the caller's own key and for the last admin key
    that still works, so that neither a slip nor a script (a fuzzer did it) can lock every
    administrator out. The live admin keys are locked first (PostgreSQL; SQLite writers
    are serialised already), so two admins revoking each other at once cannot both win."""
    key = session.exec(select(ApiKey).where(ApiKey.name == name)).first()
    if key is None:
        raise NotFound(f"no key named {name!r}")
    if key.revoked_at is not None:
        return key
    if key.id == principal.key_id:
        raise Conflict("a key cannot revoke itself: revoke it with another admin key")
    if key.role == Role.admin.value and is_live(key):
        admins = session.exec(
            select(ApiKey)
            .where(ApiKey.role == Role.admin.value, col(ApiKey.revoked_at).is_(None))
            .order_by(col(ApiKey.id))
            .with_for_update()
        ).all()
        if not any(is_live(other) and other.id != key.id for other in admins):
            raise Conflict(f"{name!r} is the last admin key that works: create another first")
    key.revoked_at = utcnow()
    session.add(key)
    session.flush()
    key_hash = key.key_hash
    after_commit(session, lambda: KEYS.forget(key_hash))  # here at once; elsewhere <= 1 s
    return key
