"""Where a submission's time goes: py-spy samples of `hearme serve --workers 1` while wrk
drives `POST .../responses` (the load of bench/submit.py), grouped by what each sampled
stack was doing.

    .venv/bin/python bench/profile_submit.py [--engine sqlite] [--seconds 15]

py-spy (in the dev extras) records every thread of the worker, and of its submissions
writer process (`service.writer`), at 200 Hz in its raw format: one line per distinct
stack with its count; each process is reported on its own. First, the CPU each thread
spent per request over the measured seconds (from /proc: exact, where py-spy samples).
Each stack is put in a group: the writer's by what it was in (`WRITER_GROUPS`), any other by
its innermost frame that `OTHER_GROUPS` recognises (so the access log's JSON encoding
counts as our middleware, not as JSON); the shares are printed with the `--top` heaviest
innermost frames of all. Only the samples of threads py-spy finds at work count (no
`--idle`); a COMMIT waiting for its fsync is among them. Shares, not seconds, are the
result: the machine's other load slows every group alike.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from submit import ensure_wrk, hearme_target, pg_database, run_wrk, wrk_script

# The writer's stacks (the group commit's unit of work, in the worker's thread or in its
# writer process), by what they were in.
WRITERS = ("in_unit_of_work (service/database.py", "store_wires (service/writer.py")
WRITER_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    ("writer: COMMIT (fsync)", ("do_commit", "_commit_impl")),
    ("writer: cells upkeep statement", ("apply (service/stats/cells.py",)),
    ("writer: events outbox and audit rows", ("service/events/", "service/audit.py")),
    ("writer: the batch's other statements", ("store_batch (service/submissions.py",)),
    ("writer: the items' checks and wire form", ("_pending (service/writer.py",)),
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
    if any(writer in joined for writer in WRITERS):
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
        # One worker: uvicorn serves in the `hearme serve` process itself (the first pid);
        # its writer is the child running `api.writer` (`service.writer`).
        processes = {"worker": target.pids[0]}
        for pid in target.pids:
            if _runs(pid, b"api.writer"):
                processes["writer"] = pid
        raws = {name: workdir / f"{name}.txt" for name in processes}
        spies = [
            subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--rate",
                    "200",
                    "--format",
                    "raw",
                    "--duration",
                    str(args.seconds + 1),
                    "--output",
                    str(raws[name]),
                    "--nonblocking",
                    *(["--gil"] if args.gil else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in processes.items()
        ]
        time.sleep(0.5)
        before = {name: thread_cpu(pid) for name, pid in processes.items()}
        summary, _ = run_wrk(wrk, target, script, seconds=args.seconds, args=args)
        after = {name: thread_cpu(pid) for name, pid in processes.items()}
        for spy in spies:
            spy.wait(timeout=args.seconds + 60)
        if args.keep:
            for name, raw in raws.items():
                shutil.copy(raw, f"{args.keep}.{name}")
        lines = {name: raw.read_text().splitlines() for name, raw in raws.items()}
    requests = summary["requests"]
    print(f"{args.engine}: {requests / (summary['duration_us'] / 1e6):.0f} req/s while profiled")
    print("\nCPU per request, by process and thread (/proc, the measured seconds):")
    for name in processes:
        for thread, seconds in sorted(after[name].items(), key=lambda item: -item[1]):
            spent = seconds - before[name].get(thread, 0.0)
            if spent * 1e6 / requests >= 5:
                print(f"  {name:7} {thread[1]:24} {spent * 1e6 / requests:7.0f} us")
    for name, found in lines.items():
        report(name, found, top=args.top, gil=args.gil)


def _runs(pid: int, marker: bytes) -> bool:
    try:
        return marker in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def thread_cpu(pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds (user and system) of each thread of `pid`, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[tuple[int, str], float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
            name = (task / "comm").read_text().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        found[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return found


def report(process: str, lines: list[str], *, top: int, gil: bool) -> None:
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for line in lines:
        sampled, _, times = line.rpartition(" ")
        frames = sampled.split(";")
        groups[group_of(frames)] += int(times)
        leaves[frames[-1]] += int(times)
    total = sum(groups.values()) or 1
    print(
        f"\n{process}: {total} samples of "
        + ("the thread holding the GIL" if gil else "every thread at work")
    )
    for name, n in groups.most_common():
        print(f"  {n / total:6.1%}  {name}")
    print(f"heaviest innermost frames (top {top}):")
    for frame, n in leaves.most_common(top):
        print(f"  {n / total:6.1%}  {frame}")


if __name__ == "__main__":
    main()
