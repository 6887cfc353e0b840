"""Submissions under load across a PostgreSQL outage (issue 10).

    python bench/faults.py [--outage 10] [--before 5] [--after 15] [--concurrency 16]
                           [--workers 2] [--pg-admin-url URL]

`hearme serve --workers N` runs on a new PostgreSQL database reached through a TCP proxy
on 127.0.0.1 (tests/fixtures/tcp_proxy.py). Clients keep `--concurrency` submissions in
flight, each with its own Idempotency-Key, for `--before` seconds; the proxy is then cut
(every connection dropped, new ones refused) for `--outage` seconds, and restored for
`--after` seconds. Every request's outcome is recorded, then the database is read
directly:

- acknowledged: a 2xx; each must be in the database (`lost` counts those that are not,
  and must be 0);
- refused: a 503 (with Retry-After); its slowest answer is printed (must be under 5 s);
- other: any other status or no answer at all (should be 0);
- stored unacknowledged: rows in the database beyond the acknowledged ones (a commit
  whose answer did not arrive; a client retrying with its Idempotency-Key gets it);
- time to recover: from the restore to the first 2xx that started after it.

The load generator is asyncio + httpx in this process: these are counts and times, not
a throughput ratio, so the client's own speed only sets the offered load.
"""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import survey_definition  # noqa: E402
from tests.fixtures.tcp_proxy import TcpProxy  # noqa: E402

DEFAULT_PG = os.environ.get(
    "HEARME_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@dataclass
class Outcome:
    started: float
    ended: float
    status: int  # 0: no answer
    response_id: str | None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def admin_engine(url: str):  # type: ignore[no-untyped-def]
    return create_engine(url, isolation_level="AUTOCOMMIT")


async def client_loop(
    client: httpx.AsyncClient, stop_at: float, outcomes: list[Outcome], token: str
) -> None:
    body = {
        "site": "site-1",
        "wave": "midway",
        "answers": {"role": "police", "trust_confidence": 4, "trust_actions": "Listen."},
    }
    while time.monotonic() < stop_at:
        started = time.monotonic()
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex}
        try:
            response = await client.post("/v1/surveys/trust/responses", json=body, headers=headers)
            status = response.status_code
            response_id = response.json().get("id") if status < 300 else None
            if status == 503:
                assert int(response.headers["retry-after"]) > 0
                await asyncio.sleep(0.05)  # a client that backs off a little
        except httpx.HTTPError:
            status, response_id = 0, None
        outcomes.append(Outcome(started, time.monotonic(), status, response_id))


async def drive(
    base_url: str, token: str, args: argparse.Namespace, proxy: TcpProxy
) -> tuple[list[Outcome], float, float]:
    outcomes: list[Outcome] = []
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        start = time.monotonic()
        stop_at = start + args.before + args.outage + args.after
        tasks = [
            asyncio.create_task(client_loop(client, stop_at, outcomes, token))
            for _ in range(args.concurrency)
        ]
        await asyncio.sleep(args.before)
        cut_at = time.monotonic()
        await asyncio.to_thread(proxy.cut, "refuse")
        await asyncio.sleep(args.outage)
        restored_at = time.monotonic()
        await asyncio.to_thread(proxy.restore)
        await asyncio.gather(*tasks)
    return outcomes, cut_at, restored_at


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outage", type=float, default=10.0)
    parser.add_argument("--before", type=float, default=5.0)
    parser.add_argument("--after", type=float, default=15.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pg-admin-url", default=DEFAULT_PG)
    args = parser.parse_args(argv)

    name = f"hearme_faults_{uuid.uuid4().hex[:8]}"
    admin = admin_engine(args.pg_admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    direct = make_url(args.pg_admin_url).set(database=name)
    proxy = TcpProxy(direct.host or "127.0.0.1", direct.port or 5432)
    proxied = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("HEARME_")},
        "HEARME_DATABASE_URL": proxied,
        "HEARME_DB_CONNECT_TIMEOUT": "2",
        "HEARME_RATE_LIMIT": "10000000",
        "HEARME_LOG_LEVEL": "ERROR",
    }
    hearme = str(Path(sys.executable).parent / "hearme")
    scratch = tempfile.mkdtemp(prefix="hearme-faults-")
    log = open(Path(scratch) / "server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [hearme, "serve", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        keys = subprocess.run(
            [hearme, "keys", "create", "--name", "bench", "--role", "admin"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        token = keys.stdout.strip().splitlines()[-1]
        created = httpx.post(
            f"{base_url}/v1/surveys",
            json=survey_definition(),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        outcomes, cut_at, restored_at = asyncio.run(drive(base_url, token, args, proxy))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        proxy.close()

    direct_engine = create_engine(direct.render_as_string(False))
    with direct_engine.connect() as conn:
        stored = set(conn.execute(text("SELECT id FROM response")).scalars())
    direct_engine.dispose()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()

    acknowledged = [o for o in outcomes if 200 <= o.status < 300]
    refused = [o for o in outcomes if o.status == 503]
    other = [o for o in outcomes if not (200 <= o.status < 300 or o.status == 503)]
    lost = [o for o in acknowledged if o.response_id not in stored]
    during = [o for o in outcomes if cut_at <= o.started < restored_at]
    recovered = [o for o in acknowledged if o.started >= restored_at]
    recovery = min(o.ended for o in recovered) - restored_at if recovered else float("nan")
    slowest_503 = max((o.ended - o.started for o in refused), default=0.0)
    statuses: dict[int, int] = {}
    for o in other:
        statuses[o.status] = statuses.get(o.status, 0) + 1

    print(
        f"load: {os.getloadavg()[0]:.2f} (1 min), workers {args.workers}, "
        f"concurrency {args.concurrency}, outage {args.outage:.0f} s"
    )
    print(f"requests:               {len(outcomes)}")
    print(f"acknowledged (2xx):     {len(acknowledged)}")
    print(f"  during the outage:    {sum(1 for o in during if 200 <= o.status < 300)}")
    print(f"refused (503):          {len(refused)}   slowest {slowest_503:.2f} s")
    print(f"other:                  {len(other)} {statuses or ''}")
    print(f"lost (2xx not stored):  {len(lost)}")
    print(f"stored unacknowledged:  {len(stored) - (len(acknowledged) - len(lost))}")
    print(f"time to recover:        {recovery:.2f} s after the database came back")
    output = (Path(scratch) / "server.log").read_text(errors="replace")
    if "Traceback" in output:
        print(output[-3000:], file=sys.stderr)
        return 1
    return 1 if lost or other else 0


if __name__ == "__main__":
    sys.exit(main())
