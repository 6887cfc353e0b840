"""API keys: random tokens, stored as SHA-256 hashes, each with one role and its sites.

A fast hash is the right tool here: tokens carry 256 bits of entropy, so there is
nothing for a slow password hash to protect against, and auth runs on every request.
"""

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

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
    revocation or expiry takes effect within 1 s everywhere), else from the database."""
    if not token:
        raise Unauthenticated("missing bearer token")
    key_hash = hash_token(token)
    entry = KEYS.fresh(key_hash)
    if entry is None:
        key = session.exec(_KEY_BY_HASH, params={"key_hash": key_hash}).first()
        if key is None or key.revoked_at is not None or key.id is None:
            KEYS.forget(key_hash)
            raise Unauthenticated("unknown or revoked key")
        entry = KEYS.put(
            key_hash,
            key_id=key.id,
            name=key.name,
            role=key.role,
            sites=frozenset(key.sites) if key.sites is not None else None,
            expires_at=getattr(key, "expires_at", None),  # keys that can expire
        )
        if entry.expired(utcnow()):
            raise Unauthenticated("unknown or revoked key")
    return _principal(entry)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.name))))


def revoke_key(session: Session, *, name: str) -> ApiKey:
    key = session.exec(select(ApiKey).where(ApiKey.name == name)).first()
    if key is None:
        raise NotFound(f"no key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.add(key)
        session.flush()
        key_hash = key.key_hash
        after_commit(session, lambda: KEYS.forget(key_hash))  # here at once; elsewhere <= 1 s
    return key
