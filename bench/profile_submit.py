"""Where a submission's time goes: py-spy samples of `hearme serve --workers 1` while wrk
drives `POST .../responses` (the load of bench/submit.py), grouped by what each sampled
stack was doing.

    .venv/bin/python bench/profile_submit.py [--engine sqlite] [--seconds 15]

py-spy (in the dev extras) records every thread of the worker at 200 Hz in its raw
format: one line per distinct stack with its count. Each stack
is put in a group: the writer thread's by what it was in (`WRITER_GROUPS`), any other by
its innermost frame that `OTHER_GROUPS` recognises (so the access log's JSON encoding
counts as our middleware, not as JSON); the shares are printed with the `--top` heaviest
innermost frames of all. Only the samples of threads py-spy finds at work count (no
`--idle`); a COMMIT waiting for its fsync is among them. Shares, not seconds, are the
result: the machine's other load slows every group alike.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from submit import ensure_wrk, hearme_target, pg_database, run_wrk, wrk_script

# The writer thread's stacks (the group commit's unit of work), by what they were in.
WRITER = "in_unit_of_work (service/database.py"
WRITER_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("writer: COMMIT (fsync)", ("do_commit", "_commit_impl")),
    ("writer: cells upkeep statement", ("apply (service/stats/cells.py",)),
    ("writer: events outbox and audit rows", ("service/events/", "service/audit.py")),
    ("writer: the batch's other statements", ("store_batch (service/submissions.py",)),
    ("writer: session and transaction around", ("",)),
]
# Everything else, by its innermost frame that one of these recognises.
OTHER_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("webhook dispatcher", ("service/events/delivery.py", "service/events/http.py")),
    (
        "request: our middleware (log line, metrics, request id, audit, headers)",
        (
            "api/middleware.py",
            "api/audit_trail.py",
            "api/security.py",
            "api/logs.py",
            "prometheus_client/",
            "logging/",
        ),
    ),
    ("request: service checks (validation, key cache, queueing)", ("(service/",)),
    ("request: pydantic (parse, validate, serialise)", ("pydantic", "json/")),
    ("request: the route (api/)", ("(api/",)),
    ("request: FastAPI (dependencies, request handler)", ("fastapi/",)),
    ("request: Starlette (routing, middleware layers)", ("starlette/",)),
    ("uvicorn: HTTP protocol, transport", ("uvicorn/", "httptools")),
    (
        "event loop and thread hand-offs (asyncio, anyio, threading)",
        ("anyio/", "asyncio/", "threading.py", "concurrent/", "selectors.py", "uvloop"),
    ),
]


def group_of(frames: list[str]) -> str:
    """`frames` outermost first, as py-spy writes them."""
    joined = ";".join(frames)
    if WRITER in joined:
        return next(name for name, marks in WRITER_GROUPS if any(m in joined for m in marks))
    for frame in reversed(frames):
        for name, marks in OTHER_GROUPS:
            if any(m in frame for m in marks):
                return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="sqlite", choices=("sqlite", "postgresql"))
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--pg-admin-url", default="postgresql+psycopg://postgres@127.0.0.1/postgres"
    )
    parser.add_argument("--keep", help="write py-spy's raw output here")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="only samples of the thread holding the GIL (what the event loop waits for)",
    )
    args = parser.parse_args()
    args.warmup, args.duration = 2, args.seconds
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    wrk = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="hearme-profile-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        if args.engine == "sqlite":
            url = f"sqlite:///{workdir / 'profile.db'}"
        else:
            url = stack.enter_context(pg_database(args.pg_admin_url))
        target = stack.enter_context(
            hearme_target("hearme", url, workdir, engine=args.engine, workers=1)
        )
        script = wrk_script(workdir, target)
        run_wrk(wrk, target, script, seconds=2, args=args)
        worker = max(target.pids)  # uvicorn's worker is started after its supervisor
        raw = Path(args.keep) if args.keep else workdir / "profile.txt"
        spy = subprocess.Popen(
            [
                py_spy,
                "record",
                "--pid",
                str(worker),
                "--rate",
                "200",
                "--format",
                "raw",
                "--duration",
                str(args.seconds + 1),
                "--output",
                str(raw),
                "--nonblocking",
                *(["--gil"] if args.gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)
        summary, _ = run_wrk(wrk, target, script, seconds=args.seconds, args=args)
        spy.wait(timeout=args.seconds + 60)
        lines = raw.read_text().splitlines()
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in lines:
        sampled, _, times = line.rpartition(" ")
        frames = sampled.split(";")
        groups[group_of(frames)] += int(times)
        leaves[frames[-1]] += int(times)
    total = sum(groups.values())
    print(
        f"{args.engine}: {summary['requests'] / (summary['duration_us'] / 1e6):.0f} req/s "
        f"while profiled, {total} samples of "
        + ("the thread holding the GIL" if args.gil else "all threads")
    )
    for name, n in groups.most_common():
        print(f"  {n / total:6.1%}  {name}")
    print(f"\nheaviest innermost frames (top {args.top}):")
    for frame, n in leaves.most_common(args.top):
        print(f"  {n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
