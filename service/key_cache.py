"""Verified API keys, cached per process, so the hot path authenticates without a
database round trip.

The bound: **a revocation or an expiry takes effect in every process and replica within
`TTL` = 1 s.** An entry is trusted for at most `TTL` after it was read from the database;
then the next request with that key reads it again (one query per key, process and
second, however many requests). Expiry needs no read at all: a key's `expires_at`, when
the key has one, is kept in the entry and checked on every request. A revocation in this
process forgets the entry as soon as it commits (`service.keys.revoke_key` registers
that with the unit of work), so here it takes effect at once.

Only verified keys are cached: an unknown token is looked up every time (there is
nothing to keep, and a cache of misses would be a store for whatever strangers send).
Entries are keyed by the token's SHA-256, never by the token.
"""

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

TTL = 1.0  # seconds
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class CachedKey:
    """What authentication needs of a key row, as it was at `read_at` (monotonic)."""

    key_id: int
    name: str
    role: str
    sites: frozenset[str] | None
    expires_at: datetime | None
    read_at: float

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class KeyCache:
    """Thread-safe, bounded (least recently read entries go first), fresh for `ttl`."""

    def __init__(
        self,
        *,
        ttl: float = TTL,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, CachedKey] = OrderedDict()
        self._lock = threading.Lock()

    def fresh(self, key_hash: str) -> CachedKey | None:
        """The entry, if it was read less than `ttl` ago and the key has not expired."""
        entry = self._entries.get(key_hash)
        if entry is None or self._clock() - entry.read_at >= self.ttl:
            return None
        if entry.expired(datetime.now(UTC)):
            return None
        return entry

    def put(
        self,
        key_hash: str,
        *,
        key_id: int,
        name: str,
        role: str,
        sites: frozenset[str] | None,
        expires_at: datetime | None,
    ) -> CachedKey:
        entry = CachedKey(key_id, name, role, sites, expires_at, self._clock())
        with self._lock:
            self._entries[key_hash] = entry
            self._entries.move_to_end(key_hash)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._entries.pop(key_hash, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


KEYS = KeyCache()
"""This process's cache."""
