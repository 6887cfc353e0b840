"""The webhook delivery process of `hearme serve` (contract §9): deliveries run beside
the workers that serve HTTP, not in them.

Why a process of its own: a delivery's work (its share of the fan-out and claim, the
signature, the HTTP exchange, the bookkeeping of its result) is CPU in Python. Run in
a serving worker, it took that worker's event loop and GIL from the submissions: one
active webhook cost them 15% of their throughput on an idle 2-core machine, while the
second core was partly idle. In a process of its own it runs on that core.

- `hearme serve` starts one delivery process (`hearme deliver --supervised`) before its
  workers, whose own dispatchers it turns off (`HEARME_WEBHOOK_DISPATCH=false` in their
  environment), restarts it should it die (not when it exits cleanly: a SIGTERM or
  SIGINT to the process group stops it with the server), and stops it when the server
  stops. With `--workers N` there is still one delivery process per server; the claims
  (`service.events.delivery`) keep N servers (replicas) from sending one attempt twice,
  as before. `HEARME_WEBHOOK_DISPATCH=false` on `hearme serve` starts none (a serving-only
  replica); `hearme deliver` alone is a delivery-only one.
- A supervised delivery process exits when its parent is gone (a SIGKILLed server
  leaves no orphan delivering on its own); its attempts in flight then run out their
  leases and are claimed again after the restart (delivery is at least once).
- It follows the commits of the workers through `Wakeup(watch=True)`: PostgreSQL's
  NOTIFY, or on SQLite `PRAGMA data_version` polled every 20 ms.
- Its own transactions commit without waiting for the disk: on SQLite with
  `synchronous=NORMAL` (every delivery transaction takes the database's one write lock,
  which the workers' submissions also need, and an fsync under that lock would hold them
  up for nothing), on PostgreSQL with `synchronous_commit=off` (its WAL flushes would
  queue with the submissions'). What that risks is the last delivery transactions on a
  power failure or a crash of the database server (not of this process), which then
  happen again: a fan-out queued again or an attempt sent again, which at-least-once
  delivery allows (receivers dedupe by `webhook-id`). Submissions keep their fsync
  (SQLite's FULL, PostgreSQL's `synchronous_commit=on`), and a later durable commit makes
  every earlier one durable too (one WAL, in order).
"""

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from sqlalchemy import event

from service.database import Database
from service.events.delivery import Dispatcher
from service.events.wakeup import Wakeup
from service.settings import Settings

log = logging.getLogger(__name__)

PARENT_CHECK = 1.0
RESTART_DELAY = 1.0
STOP_TIMEOUT = 10.0


def delivery_database(settings: Settings) -> Database:
    """The delivery process's database: commits that do not wait for the disk (above)."""
    database = Database(settings.model_copy(update={"sqlite_synchronous": "NORMAL"}))
    if database.dialect == "postgresql":

        def asynchronous_commit(dbapi_connection: Any, _record: Any) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit = off")
            dbapi_connection.commit()

        event.listen(database.engine, "connect", asynchronous_commit)
    return database


async def deliver(settings: Settings, *, supervised: bool) -> None:
    """Deliver webhooks until SIGTERM or SIGINT (or, supervised, the parent's end)."""
    parent = os.getppid()
    database = delivery_database(settings)
    wakeup = Wakeup(settings.database_url, watch=True)
    wakeup.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    dispatcher = asyncio.ensure_future(Dispatcher(database, settings, wakeup).run())
    try:
        while not stop.is_set() and not dispatcher.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), PARENT_CHECK)
            if supervised and os.getppid() != parent:
                log.warning("the server is gone: the webhook delivery process stops")
                break
    finally:
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        wakeup.stop()
        database.dispose()


def run(settings: Settings, *, supervised: bool) -> None:
    """On uvloop where it is installed (as uvicorn runs the workers): a delivery's HTTP
    exchange is mostly the event loop's own work, and uvloop's costs less CPU, which on a
    busy machine is taken from the submissions."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it where it runs
        asyncio.run(deliver(settings, supervised=supervised))
    else:
        uvloop.run(deliver(settings, supervised=supervised))


def command() -> list[str]:
    """`hearme deliver --supervised` with this interpreter (wherever the script is)."""
    return [sys.executable, "-c", "from api.cli import main; main()", "deliver", "--supervised"]


class Supervisor:
    """Runs the delivery process beside `hearme serve`, restarting it after a crash."""

    def __init__(self, env: dict[str, str]) -> None:
        self._env = env
        self._lock = threading.Lock()
        self._stopping = False
        self._wake = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="hearme-deliverer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                self._process = subprocess.Popen(command(), env=self._env, stdin=subprocess.DEVNULL)
            code = self._process.wait()
            if code == 0:
                return  # stopped by a signal to the group, or its parent's end
            with self._lock:
                if self._stopping:
                    return
            log.warning("the webhook delivery process exited with %s: restarting it", code)
            self._wake.wait(RESTART_DELAY)

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            process = self._process
        self._wake.set()
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._thread.join(timeout=STOP_TIMEOUT)
