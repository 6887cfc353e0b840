"""Pruning the feed past `HEARME_EVENT_RETENTION_DAYS`, in every server process.

Every `hearme serve` process prunes, whether or not it dispatches webhooks
(`HEARME_WEBHOOK_DISPATCH=false` keeps pruning): once at start, then every
`PRUNE_EVERY` seconds, a round of at most `PRUNE_BATCHES` batches of `feed.PRUNE_BATCH`
events (and their deliveries), each batch a short write transaction of its own, so a
large backlog never holds the write lock for long and is worked off over a few rounds.
Several processes pruning at once is harmless: a batch deletes what is still there.
"""

import asyncio
import logging

from service.database import Database
from service.events import feed

log = logging.getLogger(__name__)

PRUNE_EVERY = 300.0
PRUNE_BATCHES = 20


async def prune_round(database: Database, *, retention_days: int) -> int:
    """One round of bounded batches; returns how many events went."""
    total = 0
    for _ in range(PRUNE_BATCHES):
        pruned = await database.run(feed.prune, write=True, retention_days=retention_days)
        total += pruned
        if pruned < feed.PRUNE_BATCH:
            break
    return total


async def keep_pruning(
    database: Database, *, retention_days: int, every: float = PRUNE_EVERY
) -> None:
    """A round now and every `every` seconds, until cancelled; a failed round (the
    database unreachable) is logged and tried again at the next."""
    while True:
        try:
            await prune_round(database, retention_days=retention_days)
        except Exception as exc:
            log.warning("event pruning failed: %s", type(exc).__name__)
        await asyncio.sleep(every)
