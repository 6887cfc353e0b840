"""Rate limits (contract §11) with the `limits` library: requests per minute per key
(HEARME_RATE_LIMIT, default 1200) and failed authentications per minute per client
address (HEARME_AUTH_FAILURE_LIMIT, default 20). Over either, a 429 problem+json with
Retry-After.

Counters live in HEARME_RATE_LIMIT_STORAGE, a `limits` storage URI: `memory://` (the
default) keeps them per process, so with N worker processes and R replicas a key may make
up to N x R times its limit; `redis://host:6379` (with the `redis` package installed)
shares them, so the limits hold exactly across every worker and replica.

An address over its failed-authentication limit is refused before its key is looked up,
valid or not, until the window has room again: a guesser learns nothing and costs no
database query. The sliding-window counter keeps memory per key and address constant.
"""

import math
import time
from typing import cast

from fastapi import HTTPException
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from service.settings import Settings


class TooManyRequests(HTTPException):
    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(429, detail, headers={"Retry-After": str(retry_after)})


class _MemoryStorage(MemoryStorage):
    """`limits`' in-process storage without a thread per request: after every increment
    it starts a 10 ms `threading.Timer` to sweep expired counters unless one is running,
    so under load nearly every request started a thread (seen in py-spy on the submit
    path). Expired counters are still ignored when read (`get` checks their expiry); the
    sweep that frees their memory is started at most once a second."""

    SWEEP_EVERY = 1.0

    def __init__(self, uri: str | None = None) -> None:
        super().__init__(uri)
        self._next_sweep = 0.0

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.monotonic()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_EVERY
            getattr(super(), "_MemoryStorage__schedule_expiry")()  # noqa: B009 (mypy)


def _storage(uri: str) -> Storage:
    if uri.startswith("memory://"):
        return _MemoryStorage(uri)
    return cast(Storage, storage_from_string(uri))  # a synchronous storage: not an aio:// URI


class RateLimits:
    def __init__(self, settings: Settings) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(_storage(settings.rate_limit_storage))
        self._per_key = RateLimitItemPerMinute(settings.rate_limit)
        self._failures = RateLimitItemPerMinute(settings.auth_failure_limit)

    def _retry_after(self, item: RateLimitItemPerMinute, *identifiers: str) -> int:
        reset_at = self._limiter.get_window_stats(item, *identifiers).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def check_address(self, address: str) -> None:
        """Before authenticating: 429 while the address is over its failure limit."""
        if not self._limiter.test(self._failures, "auth-failures", address):
            raise TooManyRequests(
                "too many failed authentications from this address",
                self._retry_after(self._failures, "auth-failures", address),
            )

    def authentication_failed(self, address: str) -> None:
        self._limiter.hit(self._failures, "auth-failures", address)

    def hit_key(self, key_name: str) -> None:
        """One request by this key: 429 once it is over HEARME_RATE_LIMIT a minute."""
        if not self._limiter.hit(self._per_key, "key", key_name):
            raise TooManyRequests(
                f"this key is over its limit of {self._per_key.amount} requests a minute",
                self._retry_after(self._per_key, "key", key_name),
            )
