"""Export time and peak memory (contract §10) at two sizes, each export in a fresh process.

For each size N (default 10,000 and 100,000) it:
  1. migrates a new SQLite file (or, with `--engine postgresql`, a new PostgreSQL database,
     dropped at the end), creates the seed survey and its codebook through the service,
     and imports N responses through the service's import function (`import_into`, as
     `POST .../responses:import` does): the 204 seed responses of the demo, repeated;
  2. for each format (csv, xlsx, sav, dta), runs a new Python process that plans and
     writes the export exactly as the router does (CSV: `csv_stream` from its own read
     transaction; the others: `write_file` to a temporary file) and reports the export's
     wall and CPU time (the CPU time of the exporting process, database work in SQLite
     included, PostgreSQL's server excluded), the file's size, the process's peak RSS
     (`resource.getrusage`), and the rows pyreadstat (or a line count) reads back;
  3. runs one more process that does everything but the export (imports, settings, the
     plan): the baseline RSS of a process that holds hearme's code and libraries.

    python bench/exports.py [--sizes 10000,100000] [--formats csv,xlsx,sav,dta]
        [--engine sqlite|postgresql] [--pg-admin-url URL]

The targets (peak RSS at the larger size within 1.5x of the smaller; CSV at 100,000 in
under 10 s) are printed as met or not; nothing here asserts.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FORMATS = ("csv", "xlsx", "sav", "dta")


def _admin() -> Any:
    from schemas.keys import Role
    from service.keys import Principal

    return Principal(key_id=0, name="bench", role=Role.admin, sites=None)


def build(url: str, n: int) -> float:
    """A database holding the seed survey, its codebook and n imported responses; returns
    the import's seconds."""
    from schemas.codebooks import CodebookIn
    from schemas.surveys import SurveyDefinition
    from service.coding.codebooks import put_codebook
    from service.database import Database, upgrade
    from service.imports import import_into_survey
    from service.seed.dataset import generate_responses, load_codebook, load_survey
    from service.settings import Settings
    from service.surveys import create_survey, load_compiled

    settings = Settings(database_url=url)
    upgrade(settings)
    database = Database(settings)
    principal = _admin()
    definition = SurveyDefinition.model_validate(load_survey())
    with database.session() as session:
        create_survey(session, principal=principal, data=definition)
        compiled = load_compiled(session, survey_id=definition.id)
        codebook = CodebookIn.model_validate(load_codebook())
        put_codebook(
            session,
            compiled,
            principal=principal,
            question_id=codebook.question or "trust_actions",
            data=codebook,
        )
    seeds = [json.dumps(s.as_submission()).encode() for s in generate_responses()]
    with tempfile.TemporaryFile() as body:
        for i in range(n):
            body.write(seeds[i % len(seeds)] + b"\n")
        body.seek(0)
        started = time.perf_counter()
        with database.session() as session:
            imported = import_into_survey(
                session,
                principal=principal,
                survey_id=definition.id,
                body=body,
                media_type="application/x-ndjson",
                batch_size=settings.import_batch_size,
            )
        seconds = time.perf_counter() - started
    assert imported == n, imported
    database.dispose()
    return seconds


def child(url: str, fmt: str) -> None:
    """One export in this process; prints its figures as JSON."""
    from service.database import Database
    from service.exports import files
    from service.settings import Settings
    from service.surveys import load_compiled

    database = Database(Settings(database_url=url))
    started = time.perf_counter()
    size = 0
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"export.{fmt}"
        with database.session(write=False) as session:
            compiled = load_compiled(session, survey_id="smhm-professionals")
            plan = files.plan_export(session, compiled, principal=_admin())
            planned = time.perf_counter()
            cpu = time.process_time()
            if fmt == "csv":
                with path.open("wb") as out:
                    for chunk in files.csv_stream(database, plan):
                        out.write(chunk)
            elif fmt != "none":
                files.write_file(session, plan, fmt, path)  # type: ignore[arg-type]
        seconds = time.perf_counter() - planned
        cpu = time.process_time() - cpu
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        if path.exists():
            size = path.stat().st_size
        # read back by another library, after the figures (its memory is not the export's)
        rows = _rows_in(path, fmt) if fmt not in ("none", "xlsx") else None
    database.dispose()
    figures = {"seconds": seconds, "cpu_seconds": cpu, "peak_mib": peak, "bytes": size}
    print(json.dumps({**figures, "rows": rows, "plan_seconds": planned - started}))


def _rows_in(path: Path, fmt: str) -> int:
    """The rows the file holds, as pyreadstat (or a line count, for CSV) sees them."""
    import pyreadstat

    if fmt == "sav":
        _, meta = pyreadstat.read_sav(str(path), metadataonly=True)
        return int(meta.number_rows or 0)
    if fmt == "dta":
        _, meta = pyreadstat.read_dta(str(path), metadataonly=True)
        return int(meta.number_rows or 0)
    with path.open("rb") as lines:
        return sum(1 for _ in lines) - 1


def measure(url: str, fmt: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", fmt, "--url", url],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "HEARME_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.url, args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = [f for f in args.formats.split(",") if f]
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}", flush=True)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n in sizes:
            url, cleanup = _database(args, scratch, n)
            try:
                seconds = build(url, n)
                print(f"N={n}: imported in {seconds:.1f} s", flush=True)
                results[n] = {"baseline": measure(url, "none")}
                for fmt in formats:
                    results[n][fmt] = measure(url, fmt)
                    r = results[n][fmt]
                    print(
                        f"  {fmt:5} {r['seconds']:7.2f} s (CPU {r.get('cpu_seconds', 0):6.2f} s)"
                        f"  peak RSS {r['peak_mib']:7.1f} MiB"
                        f"  file {r['bytes'] / 2**20:7.1f} MiB  rows read back {r['rows']}",
                        flush=True,
                    )
                print(
                    f"  none  (baseline)    peak RSS {results[n]['baseline']['peak_mib']:7.1f} MiB"
                )
            finally:
                cleanup()
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    _report(results, sizes, formats)


def _database(args: argparse.Namespace, scratch: str, n: int) -> tuple[str, Any]:
    if args.engine == "sqlite":
        return f"sqlite:///{scratch}/exports-{n}.db", lambda: None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"hearme_bench_exports_{os.getpid()}_{n}"
    admin = create_engine(args.pg_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(args.pg_admin_url).set(database=name).render_as_string(hide_password=False)
    return url, drop


def _report(
    results: dict[int, dict[str, dict[str, Any]]], sizes: list[int], formats: list[str]
) -> None:
    if len(sizes) < 2:
        return
    small, large = sizes[0], sizes[-1]
    print(f"\npeak RSS at {large:,} / at {small:,} (target <= 1.5):")
    for fmt in ["baseline", *formats]:
        ratio = results[large][fmt]["peak_mib"] / results[small][fmt]["peak_mib"]
        met = "" if fmt == "baseline" else ("  met" if ratio <= 1.5 else "  NOT met")
        print(f"  {fmt:8} {ratio:5.2f}{met}")
    if "csv" in formats and large >= 100_000:
        seconds = results[large]["csv"]["seconds"]
        cpu = results[large]["csv"].get("cpu_seconds", 0.0)
        met = "met" if seconds < 10 else "NOT met"
        print(f"CSV at {large:,}: {seconds:.2f} s wall, {cpu:.2f} s CPU (target < 10 s)  {met}")


if __name__ == "__main__":
    main()
