"""Schemathesis against a real `hearme serve` (issue 10; run by .ci/run).

    python scripts/fuzz_api.py                      # CI: fixed seed, about 3 minutes
    python scripts/fuzz_api.py --seed random --max-time 1800   # a longer local hunt

A fresh SQLite database gets the demo study (204 responses, codebook, codings) and a key
of every role; a server started on it with rate limits raised out of the fuzzer's way
(their own tests are in tests/api/test_rate_limits.py) is fuzzed once per role, with
every phase (examples, coverage, fuzzing, stateful) and every check on but one (see
EXCLUDED): server errors, status codes, content types, response schemas and headers,
Allow on 405, unsupported methods, negative data rejected, authorization and resource
checks. The admin runs last, since it may revoke
the other keys (never its own: that is a 409). Exits non-zero on any failure.
"""

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("reader", "submitter", "coder", "evaluator", "admin")  # admin last
CHECKS = "all"  # tuned in scripts/schemathesis.toml
# Left out: positive_data_acceptance expects every schema-valid request to succeed, but
# hearme's rules go beyond what a JSON schema can say (distinct ids across objects, a
# coding's categories existing in the stored codebook, an opaque cursor it issued, a wave
# open now, an expiry in the future), so a schema-valid request may rightly be a 422.
EXCLUDED = "positive_data_acceptance"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed(database_url: str) -> dict[str, str]:
    """The demo study and one key per role; returns role -> token."""
    sys.path.insert(0, str(ROOT))
    from schemas.keys import KeyCreate, Role
    from service.database import Database, upgrade
    from service.demo import load_demo
    from service.keys import create_key
    from service.settings import Settings

    settings = Settings(database_url=database_url)
    upgrade(settings)
    database = Database(settings)
    tokens = {}
    try:
        with database.session() as session:
            load_demo(session)
            for role in ROLES:
                _, tokens[role] = create_key(
                    session, data=KeyCreate(name=f"fuzz-{role}", role=Role(role))
                )
    finally:
        database.dispose()
    return tokens


def wait_ready(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"hearme serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("hearme serve did not become ready in 60 s")


def fuzz(base_url: str, token: str, *, seed: int, max_time: int, report: Path) -> int:
    """One Schemathesis run, from the scratch directory (its cache stays out of the tree)."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{base_url}/openapi.json",
        "--checks",
        CHECKS,
        "--exclude-checks",
        EXCLUDED,
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--seed",
        str(seed),
        "--max-time",
        str(max_time),
        "--max-examples",
        "50",
        "--workers",
        "1",
        "--request-timeout",
        "40",  # a long poll of the event feed may rightly wait 30 s (`wait=30`)
        "--header",
        f"Authorization: Bearer {token}",
        "--report",
        "ndjson",
        "--report-dir",
        str(report),
        "--warnings",
        "off",
    ]
    return subprocess.run(command, cwd=report.parent, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", default="20261201", help="an integer, or 'random'")
    parser.add_argument("--max-time", type=int, default=150, help="seconds for the admin run")
    parser.add_argument("--role-time", type=int, default=15, help="seconds for each other role")
    parser.add_argument("--roles", default=",".join(ROLES))
    args = parser.parse_args(argv)
    seed_value = random.randrange(2**31) if args.seed == "random" else int(args.seed)
    print(f"seed {seed_value}", flush=True)

    with tempfile.TemporaryDirectory(prefix="hearme-fuzz-") as scratch:
        database_url = f"sqlite:///{scratch}/fuzz.db"
        tokens = seed(database_url)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("HEARME_")},
            "HEARME_DATABASE_URL": database_url,
            "HEARME_RATE_LIMIT": "10000000",
            "HEARME_AUTH_FAILURE_LIMIT": "10000000",
            "HEARME_LOG_LEVEL": "WARNING",
            # Webhooks the fuzzer creates are never delivered: test traffic stays here.
            "HEARME_WEBHOOK_DISPATCH": "false",
        }
        hearme = str(Path(sys.executable).parent / "hearme")
        log = open(Path(scratch) / "server.log", "wb")  # noqa: SIM115  (closed below)
        server = subprocess.Popen(
            [hearme, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        failed = []
        try:
            wait_ready(base_url, server)
            for role in args.roles.split(","):
                budget = args.max_time if role == "admin" else args.role_time
                print(f"\n==> Schemathesis as {role} ({budget} s)", flush=True)
                report = Path(scratch) / f"report-{role}"
                if fuzz(base_url, tokens[role], seed=seed_value, max_time=budget, report=report):
                    failed.append(role)
        finally:
            died = server.poll()
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            output = (Path(scratch) / "server.log").read_text(errors="replace")
            if died is not None:
                print(output[-5000:], file=sys.stderr)
                failed.append(f"the server died during the run (exit status {died})")
            elif "Traceback" in output:
                print(output[-5000:], file=sys.stderr)
                failed.append("server tracebacks")
    if failed:
        print(f"Schemathesis failed for: {', '.join(failed)} (seed {seed_value})", file=sys.stderr)
        return 1
    print(f"Schemathesis: no failures for {args.roles} (seed {seed_value})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
