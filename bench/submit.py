"""Submission throughput of `hearme serve`, against a bare FastAPI app measured in the
same run.

Starts, one after the other, on 127.0.0.1:
  (a) `hearme serve --workers 1` on a fresh SQLite file (default synchronous=FULL),
  (b) the same on a fresh PostgreSQL database,
  (c) bench/bare_app.py: the same route parsing the same JSON and storing nothing,
and drives each from a separate load-generator process (asyncio + httpx, keep-alive
pool, fixed concurrency, a warm-up then a fixed number of requests). Prints requests/s,
p50 and p99 latency, the server process's CPU use, and hearme/bare for each engine.

    /tmp/venv/bin/python bench/submit.py [--requests 3000] [--warmup 300] [--concurrency 16]

A ratio, not an absolute figure, is the result: both sides run on the same machine in
the same minute. Nothing here asserts on timings.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PATH = "/v1/surveys/bench/responses"
STARTUP_TIMEOUT = 30.0
LOAD_TIMEOUT = 300.0

SURVEY: dict[str, Any] = {
    "id": "bench",
    "title": "Professionals' survey",
    "sites": [{"id": f"site-{n}", "name": f"Site {n}"} for n in (1, 2, 3)],
    "waves": [{"id": "midway", "name": "Mid-stage survey", "opens_at": None, "closes_at": None}],
    "questions": [
        {
            "id": "role",
            "type": "choice",
            "text": "Your role",
            "required": True,
            "options": [
                {"value": v, "label": v.title()}
                for v in ("police", "health", "social-care", "education", "other")
            ],
        },
        {
            "id": "agencies",
            "type": "multi_choice",
            "text": "Agencies you work with",
            "options": [
                {"value": v, "label": v.title()} for v in ("police", "school", "ngo", "health")
            ],
        },
        {
            "id": "trust_confidence",
            "type": "likert",
            "text": "How confident are you that a child would trust you?",
            "required": True,
            "scale": [
                {"value": 1, "label": "Not confident"},
                {"value": 2, "label": "Somewhat unconfident"},
                {"value": 3, "label": "Neither confident or unconfident"},
                {"value": 4, "label": "Confident"},
                {"value": 5, "label": "Very confident"},
            ],
        },
        {"id": "years", "type": "number", "text": "Years in post", "min": 0, "max": 50},
        {"id": "cases", "type": "number", "text": "Cases", "min": 0, "integer": True},
        {"id": "involved", "type": "boolean", "text": "Directly involved in a case?"},
        {"id": "trust_actions", "type": "text", "text": "What do you need to do?"},
    ],
}

PHRASES = [
    "Listen to the young person and take what they say seriously.",
    "Build a good rapport over time; be consistent and turn up when I say I will.",
    "Be honest about what I can and cannot keep confidential.",
    "Give them time, do not rush, and go at their pace.",
    "Work with the other agencies so the child does not have to repeat their story.",
    "Be non-judgemental and treat them as a child, not as a problem.",
    "More training on exploitation and on how grooming works.",
    "Smaller caseloads so that there is time to build relationships.",
    "Follow through on actions and explain what happens next.",
    "Use language they understand, avoid jargon.",
]


def bodies(count: int, seed: int = 7) -> list[bytes]:
    """Realistic, varied submissions, serialised once so the client spends little."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        answers: dict[str, Any] = {
            "role": rng.choice(["police", "health", "social-care", "education", "other"]),
            "trust_confidence": rng.randint(1, 5),
        }
        if rng.random() < 0.8:
            answers["agencies"] = rng.sample(
                ["police", "school", "ngo", "health"], rng.randint(1, 4)
            )
        if rng.random() < 0.9:
            answers["years"] = round(rng.uniform(0, 35), 1)
        if rng.random() < 0.7:
            answers["cases"] = rng.randint(0, 40)
        if rng.random() < 0.8:
            answers["involved"] = rng.random() < 0.5
        if rng.random() < 0.95:
            answers["trust_actions"] = " ".join(rng.sample(PHRASES, rng.randint(1, 6)))
        body = {"site": f"site-{rng.randint(1, 3)}", "wave": "midway", "answers": answers}
        out.append(json.dumps(body).encode())
    return out


# --- load generator (runs in its own process) -------------------------------------------


async def _drive(
    client: httpx.AsyncClient, payloads: list[bytes], total: int, concurrency: int
) -> tuple[list[float], Counter[int], float]:
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    sent = 0

    async def worker() -> None:
        nonlocal sent
        while sent < total:
            n = sent
            sent += 1
            started = time.perf_counter()
            try:
                response = await client.post(PATH, content=payloads[n % len(payloads)])
            except httpx.TransportError:
                statuses[0] += 1  # reported as status 0: no answer
                continue
            latencies.append(time.perf_counter() - started)
            statuses[response.status_code] += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, statuses, time.perf_counter() - began


async def _load(
    conn: Connection, base_url: str, token: str | None, warmup: int, requests: int, concurrency: int
) -> None:
    payloads = bodies(1000)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=60.0
    ) as client:
        _, warm_statuses, _ = await _drive(client, payloads, warmup, concurrency)
        conn.send(("warm", dict(warm_statuses)))
        conn.recv()  # the parent's go, once it has read the CPU counters
        latencies, statuses, elapsed = await _drive(client, payloads, requests, concurrency)
    conn.send(("done", (latencies, dict(statuses), elapsed)))


def load_process(
    conn: Connection, base_url: str, token: str | None, warmup: int, requests: int, concurrency: int
) -> None:
    asyncio.run(_load(conn, base_url, token, warmup, requests, concurrency))


# --- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def hearme_command() -> list[str]:
    script = Path(sys.executable).parent / "hearme"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from api.cli import main; main()"]
    )


def env_for(database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARME_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if database_url:
        env["HEARME_DATABASE_URL"] = database_url
        # One submitter key sends every request: far past the default 1,200 a minute,
        # which would measure the rate limiter's 429s instead of submissions.
        env["HEARME_RATE_LIMIT"] = "100000000"
    return env


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes, from /proc (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


@dataclass
class Target:
    name: str
    base_url: str
    token: str | None
    pids: list[int]  # the server's processes


@contextmanager
def serve(command: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[int]:
    """Run a server in its own process group until the block ends; yields its pid."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=out, start_new_session=True
        )
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"server exited; see {log}")
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not up in {STARTUP_TIMEOUT} s; see {log}")
                time.sleep(0.1)
            yield process.pid
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=10)


@contextmanager
def hearme_target(name: str, database_url: str, workdir: Path) -> Iterator[Target]:
    env = env_for(database_url)
    done = subprocess.run(
        [*hearme_command(), "keys", "create", "--name", "bench", "--role", "submitter"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    token = done.stdout.strip().splitlines()[-1]
    admin = (
        subprocess.run(
            [*hearme_command(), "keys", "create", "--name", "bench-admin", "--role", "admin"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    port = free_port()
    command = [
        *hearme_command(),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with serve(command, env, workdir / f"{name}.log", port) as pid:
        base_url = f"http://127.0.0.1:{port}"
        created = httpx.post(
            f"{base_url}/v1/surveys",
            json=SURVEY,
            headers={"Authorization": f"Bearer {admin}"},
            timeout=30,
        )
        created.raise_for_status()
        yield Target(name, base_url, token, [pid])


@contextmanager
def bare_target(workdir: Path) -> Iterator[Target]:
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port)]
    with serve(command, env_for(None), workdir / "bare.log", port) as pid:
        yield Target("bare", f"http://127.0.0.1:{port}", None, [pid])


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    name = f"hearme_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- measurement ------------------------------------------------------------------------


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine, all cores, from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


@dataclass
class Result:
    name: str
    requests: int
    elapsed: float
    p50: float
    p99: float
    server_cpu: float  # CPU seconds of the server process over the measured phase
    client_cpu: float  # the same for the load generator
    machine: float  # share of all cores busy (any process) over the measured phase
    statuses: dict[int, int]

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def cpu_per_request(self) -> float:
        return self.server_cpu / self.requests


def _receive(conn: Connection, process: multiprocessing.process.BaseProcess) -> Any:
    """The load process's next message; fails at once if it dies, or after LOAD_TIMEOUT."""
    deadline = time.monotonic() + LOAD_TIMEOUT
    while time.monotonic() < deadline:
        if conn.poll(1.0):
            return conn.recv()
        if not process.is_alive():
            raise RuntimeError(f"the load generator exited with {process.exitcode}")
    raise RuntimeError(f"the load generator did not answer in {LOAD_TIMEOUT} s")


def measure(target: Target, args: argparse.Namespace) -> Result:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(
        target=load_process,
        args=(child, target.base_url, target.token, args.warmup, args.requests, args.concurrency),
    )
    process.start()
    try:
        _, warm = _receive(parent, process)
        if set(warm) - {200, 201}:
            raise RuntimeError(f"{target.name}: warm-up answered {warm} (0: no answer)")
        assert process.pid is not None
        server_before = cpu_seconds(target.pids)
        client_before = cpu_seconds([process.pid])
        busy_before, total_before = machine_busy()
        parent.send("go")
        _, (latencies, statuses, elapsed) = _receive(parent, process)
        server_cpu = cpu_seconds(target.pids) - server_before
        client_cpu = cpu_seconds([process.pid]) - client_before
        busy_after, total_after = machine_busy()
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    machine = (busy_after - busy_before) / max(total_after - total_before, 1e-9)
    return Result(
        name=target.name,
        requests=len(latencies),
        elapsed=elapsed,
        p50=cuts[49],
        p99=cuts[98],
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        machine=machine,
        statuses=statuses,
    )


def report(results: list[Result], rounds: int) -> None:
    """Every round's figures, then per engine the median over rounds of hearme/bare,
    each ratio taken within one round (the servers were measured a minute apart)."""
    print()
    header = (
        f"{'target':<18}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU':>9}"
        f"{'CPU ms/req':>12}{'client CPU':>12}{'machine':>9}  statuses"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<18}{r.rps:>8.0f}{r.p50 * 1000:>9.2f}{r.p99 * 1000:>9.2f}"
            f"{r.server_cpu / r.elapsed:>9.0%}{r.cpu_per_request * 1000:>12.2f}"
            f"{r.client_cpu / r.elapsed:>12.0%}{r.machine:>9.0%}  {r.statuses}"
        )
    per_round = len(results) // rounds
    by_round = [results[n * per_round : (n + 1) * per_round] for n in range(rounds)]
    names = [r.name for r in by_round[0]]
    if "bare" not in names:
        return
    print()
    print("hearme/bare, median over rounds [min-max]; throughput = req/s ratio; CPU cost =")
    print("bare's server CPU per request over hearme's (robust to other load on the machine)")
    for name in names:
        if name == "bare":
            continue
        pairs = [
            (next(r for r in rs if r.name == name), next(r for r in rs if r.name == "bare"))
            for rs in by_round
        ]
        speed = sorted(h.rps / b.rps for h, b in pairs)
        cost = sorted(b.cpu_per_request / h.cpu_per_request for h, b in pairs)
        print(
            f"  {name:<20} throughput {statistics.median(speed):.2f} "
            f"[{speed[0]:.2f}-{speed[-1]:.2f}]   CPU cost {statistics.median(cost):.2f} "
            f"[{cost[0]:.2f}-{cost[-1]:.2f}]"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="hearme submission throughput vs a bare app")
    parser.add_argument("--requests", type=int, default=3000, help="measured requests per round")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured requests first")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds over all targets, interleaved"
    )
    parser.add_argument(
        "--targets",
        default="sqlite,postgresql,bare",
        help="comma-separated subset of sqlite, postgresql, bare",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("HEARME_TEST_PG_URL", DEFAULT_PG_ADMIN),
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    args = parser.parse_args()
    # Stop the servers (and drop the database) on SIGTERM too, e.g. from `timeout`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted) - {"sqlite", "postgresql", "bare"}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; per round and target "
        f"{args.requests} requests after {args.warmup} warm-up, concurrency "
        f"{args.concurrency}; {args.rounds} round(s)"
    )
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hearme-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        targets: list[Target] = []
        for name in wanted:  # every server is started first, then measured in turn
            if name == "sqlite":
                url = f"sqlite:///{workdir / 'bench.db'}"
                targets.append(stack.enter_context(hearme_target("hearme-sqlite", url, workdir)))
            elif name == "postgresql":
                url = stack.enter_context(pg_database(args.pg_admin_url))
                targets.append(
                    stack.enter_context(hearme_target("hearme-postgresql", url, workdir))
                )
            else:
                targets.append(stack.enter_context(bare_target(workdir)))
        for n in range(args.rounds):
            for target in targets:
                print(f"round {n + 1}: {target.name} ...", flush=True)
                results.append(measure(target, args))
    report(results, args.rounds)
    bad = sorted({r.name for r in results if set(r.statuses) - {200, 201}})
    if bad:
        print(f"\nunexpected statuses from {', '.join(bad)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
