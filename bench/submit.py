"""Submission throughput of `hearme serve` under wrk, against a bare FastAPI app measured
in the same run.

Starts on 127.0.0.1, all before measuring:
  (a) `hearme serve --workers 1` on a fresh SQLite file (synchronous=FULL, the default),
  (b) the same on a fresh PostgreSQL database (fsync and synchronous_commit on: checked),
  (c) both again with `--workers 2` (for their p99 at that load),
  (d) bench/bare_app.py: the same route parsing the same JSON and storing nothing,
then measures them in turn, round after round (so other load on the machine falls on
all of them alike), each with `wrk -t2 -c32` for a few seconds after a warm-up. wrk
(Debian's package; installed here when missing) posts realistic bodies from a Lua script,
each with an Idempotency-Key of its own. Prints requests/s, p50 and p99 latency (wrk's),
the server's and wrk's CPU use, and hearme/bare per engine.

    python bench/submit.py [--duration 8] [--rounds 3] [--connections 32]

A ratio, not an absolute figure, is the result: both sides run on the same machine in
the same minute. Nothing here asserts on timings.
"""

import argparse
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PATH = "/v1/surveys/bench/responses"
STARTUP_TIMEOUT = 90.0  # two workers took 44 s to start at load average 13

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
    pids: list[int]  # the server's processes (supervisor and workers)
    engine: str  # "sqlite", "postgresql" or "bare"
    workers: int = 1


def descendants(pid: int) -> list[int]:
    """The process and every process below it, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


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
def hearme_target(
    name: str, database_url: str, workdir: Path, *, engine: str, workers: int
) -> Iterator[Target]:
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
        str(workers),
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
        time.sleep(1.0)  # every worker up (the supervisor answered /healthz through one)
        yield Target(name, base_url, token, descendants(pid), engine, workers)


@contextmanager
def bare_target(workdir: Path) -> Iterator[Target]:
    port = free_port()
    command = [sys.executable, str(ROOT / "bench" / "bare_app.py"), "--port", str(port)]
    with serve(command, env_for(None), workdir / "bare.log", port) as pid:
        yield Target("bare", f"http://127.0.0.1:{port}", None, descendants(pid), "bare")


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    name = f"hearme_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            durable = {
                setting: conn.execute(text(f"SHOW {setting}")).scalar()
                for setting in ("fsync", "synchronous_commit")
            }
            if set(durable.values()) != {"on"}:
                raise SystemExit(f"PostgreSQL is not durable here: {durable}")
            print(f"PostgreSQL {durable}")
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- load generator: wrk ---------------------------------------------------------------

LUA = r"""
-- Posts the bodies of bodies.ndjson in turn, each request with an Idempotency-Key of
-- its own (thread id, run tag and a counter), and prints wrk's summary as JSON.
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local headers = {
  ["Content-Type"] = "application/json",
  %(auth)s
}
local counter = 0
local tag = "%(tag)s"

function setup(thread)
  thread:set("tid", tostring(math.random(1, 1e9)))
end

function request()
  counter = counter + 1
  headers["Idempotency-Key"] = tag .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", "%(path)s", headers, bodies[(counter %% #bodies) + 1])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\"requests\": %%d, \"duration_us\": %%d, \"connect\": %%d, \"read\": %%d," ..
    " \"write\": %%d, \"status\": %%d, \"timeout\": %%d, \"p50_us\": %%d, \"p99_us\": %%d}\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def ensure_wrk() -> str:
    """wrk's path; installs Debian's package when it is missing (root, apt)."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def wrk_script(workdir: Path, target: Target) -> Path:
    bodies_path = workdir / "bodies.ndjson"
    if not bodies_path.exists():
        bodies_path.write_bytes(b"\n".join(bodies(1000)) + b"\n")
    auth = f'["Authorization"] = "Bearer {target.token}",' if target.token else ""
    script = workdir / f"{target.name}.lua"
    script.write_text(
        LUA % {"bodies": bodies_path, "auth": auth, "tag": uuid.uuid4().hex[:8], "path": PATH}
    )
    return script


def run_wrk(
    wrk: str, target: Target, script: Path, *, seconds: float, args: argparse.Namespace
) -> tuple[dict[str, int], float]:
    """One wrk run; its summary and wrk's own CPU seconds."""
    command = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        target.base_url + PATH,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = process.stdout.read().decode()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    found = re.search(r"^WRK_JSON (.*)$", output, re.MULTILINE)
    if process.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed on {target.name}:\n{output}")
    summary: dict[str, int] = json.loads(found.group(1))
    return summary, usage.ru_utime + usage.ru_stime


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
    server_cpu: float  # CPU seconds of the server's processes over the measured run
    client_cpu: float  # the same for wrk
    machine: float  # share of all cores busy (any process) over the measured run
    errors: dict[str, int]  # wrk's: non-2xx statuses, socket errors, timeouts

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    @property
    def cpu_per_request(self) -> float:
        return self.server_cpu / max(self.requests, 1)


def measure(wrk: str, target: Target, script: Path, args: argparse.Namespace) -> Result:
    run_wrk(wrk, target, script, seconds=args.warmup, args=args)
    server_before = cpu_seconds(target.pids)
    busy_before, total_before = machine_busy()
    summary, client_cpu = run_wrk(wrk, target, script, seconds=args.duration, args=args)
    server_cpu = cpu_seconds(target.pids) - server_before
    busy_after, total_after = machine_busy()
    errors = {k: summary[k] for k in ("connect", "read", "write", "status", "timeout")}
    return Result(
        name=target.name,
        requests=summary["requests"],
        elapsed=summary["duration_us"] / 1e6,
        p50=summary["p50_us"] / 1e6,
        p99=summary["p99_us"] / 1e6,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        machine=(busy_after - busy_before) / max(total_after - total_before, 1e-9),
        errors={k: v for k, v in errors.items() if v},
    )


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def report(results: list[Result], rounds: int) -> None:
    """Every round's figures, then per target the median over rounds of hearme/bare, each
    ratio taken within one round (the targets were measured seconds apart)."""
    print()
    header = (
        f"{'target':<22}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU':>9}"
        f"{'CPU ms/req':>12}{'wrk CPU':>9}{'machine':>9}  errors"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<22}{r.rps:>8.0f}{r.p50 * 1000:>9.2f}{r.p99 * 1000:>9.2f}"
            f"{r.server_cpu / r.elapsed:>9.0%}{r.cpu_per_request * 1000:>12.2f}"
            f"{r.client_cpu / r.elapsed:>9.0%}{r.machine:>9.0%}  {r.errors or ''}"
        )
    per_round = len(results) // rounds
    by_round = [results[n * per_round : (n + 1) * per_round] for n in range(rounds)]
    names = [r.name for r in by_round[0]]
    if "bare" not in names:
        return
    print()
    print("hearme/bare, median over rounds [min-max] of the req/s ratio within a round;")
    print("CPU cost = bare's server CPU per request over hearme's (less sensitive to other")
    print("load on the machine); p99 = median over rounds of wrk's p99 latency")
    for name in names:
        pairs = [
            (next(r for r in rs if r.name == name), next(r for r in rs if r.name == "bare"))
            for rs in by_round
        ]
        speed = sorted(h.rps / b.rps for h, b in pairs)
        cost = sorted(b.cpu_per_request / h.cpu_per_request for h, b in pairs)
        p99 = statistics.median(h.p99 for h, _ in pairs)
        rps = statistics.median(h.rps for h, _ in pairs)
        ratio = ""
        if name != "bare":
            ratio = (
                f"hearme/bare {statistics.median(speed):.2f} [{speed[0]:.2f}-{speed[-1]:.2f}]"
                f"   CPU cost {statistics.median(cost):.2f} [{cost[0]:.2f}-{cost[-1]:.2f}]"
            )
        print(f"  {name:<22}{rps:>8.0f} req/s  p99 {p99 * 1000:7.1f} ms   {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description="hearme submission throughput vs a bare app")
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets")
    parser.add_argument(
        "--targets",
        default="bare,sqlite,postgresql,sqlite-w2,postgresql-w2",
        help="comma-separated subset of bare, sqlite, postgresql, sqlite-w2, postgresql-w2",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("HEARME_TEST_PG_URL", DEFAULT_PG_ADMIN),
        help="a PostgreSQL URL allowed to create and drop databases",
    )
    args = parser.parse_args()
    # Stop the servers (and drop the databases) on SIGTERM too, e.g. from `timeout`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    known = ("bare", "sqlite", "postgresql", "sqlite-w2", "postgresql-w2")
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = set(wanted) - set(known)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    wrk = ensure_wrk()
    version = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{(version.stdout or version.stderr).splitlines()[0]}; per round and target "
        f"{args.warmup:g} s warm-up then {args.duration:g} s of wrk -t{args.threads} "
        f"-c{args.connections}; {args.rounds} round(s)"
    )
    print(f"uptime before: {uptime()}")
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="hearme-bench-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        targets: list[Target] = []
        for name in wanted:  # every server is started first, then measured in turn
            engine, _, suffix = name.partition("-")
            workers = 2 if suffix == "w2" else 1
            label = f"hearme-{engine}" + (" w2" if workers == 2 else "")
            if engine == "bare":
                targets.append(stack.enter_context(bare_target(workdir)))
                continue
            if engine == "sqlite":
                url = f"sqlite:///{workdir / f'bench-{name}.db'}"
            else:
                url = stack.enter_context(pg_database(args.pg_admin_url))
            targets.append(
                stack.enter_context(
                    hearme_target(label, url, workdir, engine=engine, workers=workers)
                )
            )
        scripts = {t.name: wrk_script(workdir, t) for t in targets}
        for n in range(args.rounds):
            for target in targets:
                print(f"round {n + 1}: {target.name} ...", flush=True)
                results.append(measure(wrk, target, scripts[target.name], args))
    print(f"uptime after: {uptime()}")
    report(results, args.rounds)
    bad = sorted({r.name for r in results if r.errors})
    if bad:
        print(f"\nerrors (non-2xx, socket errors or timeouts) from {', '.join(bad)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
