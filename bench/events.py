"""Events and webhooks under load: feed throughput, delivery latency from commit to
receiver, and what one active webhook costs the submit path, in the same run.

For each engine (SQLite, PostgreSQL), on 127.0.0.1:
  1. `hearme serve --workers 1` on a fresh database (the bench survey of bench/submit.py);
  2. rounds of: wrk drives submissions for `--seconds` with no webhook (baseline), and
     with one webhook subscribed to every event, its receiver an asyncio protocol on
     uvloop in a separate process that answers 200 at once and notes each arrival's time
     (the order alternates from round to round: the database grows through the run);
     each round's ratio, their mean and its 95% confidence interval are printed (the
     rounds are the samples: many short rounds settle the ratio better than a few long
     ones, on a machine whose speed drifts);
  3. delivery latency: arrival at the receiver minus the event's `occurred_at` (taken in
     the committing transaction), p50/p99 over every delivery made during the load and
     the 3 s after it (the same machine's clock on both sides), and how many of the
     submissions stored with the webhook active were delivered by then (`delivered/due`:
     a backlog that outgrows the dispatcher shows there, not in the latency);
  4. the CPU time of the server's processes (`hearme serve` and its webhook delivery
     process) per stored submission, with and without the webhook (the webhook's
     includes draining its backlog after the load): on a machine that other work keeps
     busy, the CPU ratio is steadier than the throughput ratio; and the same ratio for
     the serving processes alone (`workers'`, the delivery process left out);
  5. the feed: every event read back through `GET /v1/events?limit=1000`, events/s.

    .venv/bin/python bench/events.py [--seconds 6] [--rounds 12] [--connections 16]

Ratios, not absolute figures, are the result. Nothing here asserts on timings.
"""

import argparse
import asyncio
import json
import multiprocessing
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import scipy.stats
import uvloop
from submit import (  # bench/submit.py, beside this script
    DEFAULT_PG_ADMIN,
    PATH,
    SURVEY,
    bodies,
    cpu_seconds,
    descendants,
    env_for,
    free_port,
    hearme_command,
    pg_database,
    serve,
)

ENV = {"HEARME_WEBHOOK_ALLOW_PRIVATE": "true", "HEARME_SECRET_KEY": "bench-secret-key-0123456789"}


# --- receiver (its own process) ---------------------------------------------------------


class _Receiving(asyncio.Protocol):
    """One connection of the receiver: each complete request is noted (arrival time and
    body) and answered 200 at once. A protocol on uvloop, not streams on the default
    loop: the receiver shares the machine's two cores with the server, so whatever CPU
    it spends per delivery comes out of the submissions being measured (the same rule as
    for wrk: the outside world must be much cheaper than the server)."""

    def __init__(self, arrivals: list[tuple[float, bytes]]) -> None:
        self.arrivals = arrivals
        self.buffer = b""
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport's

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        answers = 0
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = int(head[at + 15 :].split(b"\r\n", 1)[0]) if at >= 0 else 0
            if len(self.buffer) < end + 4 + length:
                break
            self.arrivals.append((time.time(), self.buffer[end + 4 : end + 4 + length]))
            self.buffer = self.buffer[end + 4 + length :]
            answers += 1
        if answers and self.transport is not None:
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" * answers)


async def _serve_receiver(conn: Connection, port: int) -> None:
    arrivals: list[tuple[float, bytes]] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Receiving(arrivals), "127.0.0.1", port)
    conn.send("up")
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "stop":
            break
        if command == "take":
            taken, arrivals[:] = list(arrivals), []
            conn.send([(at, json.loads(body)["occurred_at"]) for at, body in taken])
    server.close()


def receiver_process(conn: Connection, port: int) -> None:
    uvloop.run(_serve_receiver(conn, port))


# --- load -------------------------------------------------------------------------------

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
local bodies = {{ {bodies} }}
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, bodies[(n % #bodies) + 1])
end
"""


def wrk(base_url: str, script: Path, seconds: int, connections: int) -> tuple[float, int]:
    """Submissions per second (2xx only) over `seconds`, and how many."""
    done = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base_url + PATH],
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout
    requests = int(out.split(" requests in ")[0].split()[-1])
    non2xx = 0
    for line in out.splitlines():
        if "Non-2xx" in line:
            non2xx = int(line.split(":")[1])
    return (requests - non2xx) / seconds, requests - non2xx


def delivering(pid: int) -> bool:
    """Whether the process is the server's webhook delivery process (`hearme deliver`)."""
    try:
        return b"deliver" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


def occurred(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run_engine(engine: str, url: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    env = {**env_for(url), **ENV}

    def key(name: str, role: str) -> str:
        done = subprocess.run(
            [*hearme_command(), "keys", "create", "--name", name, "--role", role],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip().splitlines()[-1]

    submitter, admin = key("bench", "submitter"), key("bench-admin", "admin")
    port = free_port()
    command = [*hearme_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    script = workdir / f"{engine}.lua"
    lua_bodies = ", ".join(json.dumps(b.decode()) for b in bodies(200))
    script.write_text(LUA.format(token=submitter, bodies=lua_bodies))
    receiver_port = free_port()
    parent, child = multiprocessing.Pipe()
    receiver = multiprocessing.Process(target=receiver_process, args=(child, receiver_port))
    receiver.start()
    parent.recv()
    rows: dict[str, list[float]] = {"none": [], "webhook": []}
    cpu: dict[str, list[float]] = {"none": [], "webhook": []}
    serving_cpu: dict[str, list[float]] = {"none": [], "webhook": []}  # workers alone
    latencies: list[float] = []
    hooked = 0  # submissions stored while the webhook was active: each one a delivery
    try:
        with serve(command, env, workdir / f"{engine}.log", port) as pid:
            base = f"http://127.0.0.1:{port}"
            auth = {"Authorization": f"Bearer {admin}"}
            httpx.post(f"{base}/v1/surveys", json=SURVEY, headers=auth).raise_for_status()
            wrk(base, script, 3, args.connections)  # warm-up
            time.sleep(1)
            hook_id = None
            for round_ in range(args.rounds):
                # Alternate which goes first, so that a database growing through the run
                # (every round stores more) weighs on both alike.
                for mode in ("none", "webhook") if round_ % 2 == 0 else ("webhook", "none"):
                    if mode == "webhook":
                        made = httpx.post(
                            f"{base}/v1/webhooks",
                            json={"url": f"http://127.0.0.1:{receiver_port}/", "events": ["*"]},
                            headers=auth,
                        )
                        made.raise_for_status()
                        hook_id = made.json()["id"]
                    pids = descendants(pid)  # the server and its delivery process
                    serving = [p for p in pids if not delivering(p)]
                    before, serving_before = cpu_seconds(pids), cpu_seconds(serving)
                    rate, stored = wrk(base, script, args.seconds, args.connections)
                    rows[mode].append(rate)
                    if mode == "webhook":
                        hooked += stored
                    if hook_id is not None:
                        time.sleep(3)  # the backlog drains: its CPU counts
                    cpu[mode].append((cpu_seconds(pids) - before) / stored * 1000)
                    serving_cpu[mode].append(
                        (cpu_seconds(serving) - serving_before) / stored * 1000
                    )
                    if hook_id is not None:
                        parent.send("take")
                        arrivals = parent.recv()
                        latencies += [at - occurred(o) for at, o in arrivals]
                        httpx.delete(f"{base}/v1/webhooks/{hook_id}", headers=auth)
                        hook_id = None
            started = time.perf_counter()
            count, cursor = 0, None
            with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
                while True:
                    params: dict[str, Any] = {"limit": 1000}
                    if cursor:
                        params["after"] = cursor
                    page = client.get("/v1/events", params=params).json()
                    if not page["items"]:
                        break
                    count += len(page["items"])
                    cursor = page["next_cursor"]
            feed_rate = count / (time.perf_counter() - started)
    finally:
        parent.send("stop")
        receiver.join(10)
    base_rate = statistics.mean(rows["none"])
    return {
        "engine": engine,
        "none": rows["none"],
        "webhook": rows["webhook"],
        "ratio": statistics.mean(rows["webhook"]) / base_rate,
        "cpu_none": statistics.mean(cpu["none"]),
        "cpu_webhook": statistics.mean(cpu["webhook"]),
        "serving_ratio": statistics.mean(serving_cpu["webhook"])
        / statistics.mean(serving_cpu["none"]),
        "deliveries": len(latencies),
        "hooked": hooked,
        "p50_ms": pct(latencies, 0.5) * 1000,
        "p99_ms": pct(latencies, 0.99) * 1000,
        "feed_events": count,
        "feed_per_s": feed_rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--pg-admin", default=DEFAULT_PG_ADMIN)
    parser.add_argument("--engines", default="sqlite,postgresql")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="hearme-bench-events-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        for engine in args.engines.split(","):
            if engine == "sqlite":
                url = f"sqlite:///{workdir / 'bench.db'}"
            else:
                url = stack.enter_context(pg_database(args.pg_admin))
            results.append(run_engine(engine, url, args, workdir))
    print(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    header = "engine       submit/s none      submit/s webhook   webhook/none"
    print(
        header + "  CPU ms/submit none  webhook  ratio  workers'  delivered/due  p50 ms  p99 ms"
        "  feed ev/s"
    )
    for r in results:
        none = "/".join(f"{v:.0f}" for v in r["none"])
        hook = "/".join(f"{v:.0f}" for v in r["webhook"])
        print(
            f"{r['engine']:<12} {none:<17} {hook:<18} {r['ratio']:>12.2f}"
            f"  {r['cpu_none']:>18.2f}  {r['cpu_webhook']:>7.2f}"
            f"  {r['cpu_webhook'] / r['cpu_none']:>5.2f}  {r['serving_ratio']:>8.2f}"
            f"  {r['deliveries']:>6}/{r['hooked']:<6}  {r['p50_ms']:>6.1f}  {r['p99_ms']:>6.1f}"
            f"  {r['feed_per_s']:>9.0f} ({r['feed_events']} events)"
        )
    for r in results:
        pairs = [w / n for n, w in zip(r["none"], r["webhook"], strict=True)]
        low, high = interval(pairs)
        print(
            f"{r['engine']}: webhook/none round by round {' '.join(f'{x:.2f}' for x in pairs)};"
            f" mean {statistics.mean(pairs):.3f}, 95% interval {low:.3f}-{high:.3f}"
        )


def interval(pairs: list[float]) -> tuple[float, float]:
    """The 95% confidence interval of the mean round ratio (Student's t): each round
    pairs a run with the webhook and one without, taken within the same half minute, so
    the machine's drift through the run weighs on both sides of a pair alike and the
    rounds are the samples."""
    if len(pairs) < 2:
        return float("nan"), float("nan")
    mean = statistics.mean(pairs)
    half = scipy.stats.t.ppf(0.975, len(pairs) - 1) * statistics.stdev(pairs) / len(pairs) ** 0.5
    return mean - half, mean + half


if __name__ == "__main__":
    main()
