"""How long publishing a release takes (contract §7.6), with the audit's LP sizes.

    python bench/releases.py [--sizes 10000,100000] [--tables 10,50] [--engine sqlite]

For each size, a fresh database gets the seed survey (`service/seed/survey.json`) and
that many synthetic responses, stored through the import service (`import_into_survey`, as
`POST .../responses:import` does). The answers are skewed (a rare role, gender,
ethnicity), so small cells exist even at 100,000. For each table count, a release of
that many tables (composition and likert tables over six questions, with `by`, site
scopes and filters; drawn with a fixed seed, the 10 being the first of the 50) is
published through `service.releases.publication.publish` in one write transaction.

The baseline, measured in the same run, is computing the same tables live and exact
(`service/stats`), which is what publication does before its audit; the ratio is
publication over that. LP sizes come from the audit's own summary. CPU seconds
(this process, HiGHS's threads included) are printed beside wall seconds: on a shared,
overloaded machine they say more than the wall clock.
"""

import argparse
import io
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from schemas.keys import Role
from schemas.releases import ReleaseIn, ReleaseTableIn
from schemas.surveys import SurveyDefinition
from service.database import Database, upgrade
from service.imports import import_into_survey
from service.keys import Principal
from service.releases import publication
from service.seed.dataset import load_survey
from service.settings import Settings
from service.surveys import create_survey, load_compiled

ADMIN = Principal(key_id=0, name="bench", role=Role.admin, sites=None)
WEIGHTS: dict[str, tuple[list[Any], list[float]]] = {
    "role": (
        [
            "la_social_work",
            "police",
            "youth_interventions",
            "education",
            "health",
            "family_support",
            "senior_management",
            "other",
        ],
        [46, 38, 24, 19, 18, 15, 10, 34],
    ),
    "gender": (["female", "male", "other", "prefer_not_to_say"], [73, 25, 0.02, 0.5]),
    "age_band": (["under_25", "25_34", "35_44", "45_54", "55_plus"], [4, 20, 30, 30, 16]),
    "ethnicity": (
        ["white_british", "white_irish", "white_other", "asian_indian", "mixed_other"],
        [80, 3, 8, 0.05, 0.03],
    ),
    "cse_case_involvement": ([True, False], [60, 40]),
    "trust_confidence": ([1, 2, 3, 4, 5], [17, 53, 53, 73, 8]),
}
COUNTED = ["role", "gender", "age_band", "ethnicity", "cse_case_involvement"]


def rows(n: int, rng: random.Random) -> bytes:
    out = io.BytesIO()
    for _ in range(n):
        answers = {q: rng.choices(v, w)[0] for q, (v, w) in WEIGHTS.items()}
        for q in ("gender", "age_band", "ethnicity"):
            if rng.random() < 0.02:
                del answers[q]
        out.write(
            orjson.dumps(
                {
                    "site": rng.choices(["site-1", "site-2", "site-3"], [80, 70, 54])[0],
                    "wave": "midway",
                    "submitted_at": "2015-08-02T10:00:00Z",
                    "answers": answers,
                }
            )
            + b"\n"
        )
    return out.getvalue()


def specs(count: int) -> list[ReleaseTableIn]:
    rng = random.Random(2017)
    pool: list[dict[str, Any]] = []
    for question in [*COUNTED, "trust_confidence"]:
        kind = "likert" if question == "trust_confidence" else "composition"
        for by in (None, "site", "role", "gender", "age_band"):
            if by == question:
                continue
            for scope in ({}, {"site": ["site-1"]}, {"q": {"gender": ["female"]}}):
                if "q" in scope and question == "gender":
                    continue
                pool.append({"kind": kind, "question": question, "by": by, **scope})
    chosen = rng.sample(pool, 50)[:count]
    return [ReleaseTableIn.model_validate({"id": f"t{i}", **s}) for i, s in enumerate(chosen)]


def live(db: Database, survey_id: str, tables: list[ReleaseTableIn]) -> tuple[float, float]:
    started, cpu = time.perf_counter(), time.process_time()
    with db.session(write=False) as session:
        compiled = load_compiled(session, survey_id=survey_id)
        for i, spec in enumerate(tables):
            publication._exact_table(session, compiled, principal=ADMIN, spec=spec, i=i)
    return time.perf_counter() - started, time.process_time() - cpu


def publish(db: Database, survey_id: str, tables: list[ReleaseTableIn], name: str) -> Any:
    started, cpu = time.perf_counter(), time.process_time()
    with db.session(write=True) as session:
        compiled = load_compiled(session, survey_id=survey_id)
        data = ReleaseIn(id=name, title=name, tables=tables)
        release, audit = publication.publish(
            session,
            compiled,
            principal=ADMIN,
            data=data,
            default_min_cell=5,
            audit_seconds=600,
        )
        hidden = sum(
            1
            for t in release.tables
            for body in [t, *(t.get("groups") or ())]
            for r in body["rows"]
            if r["count"] is None
        )
        cells = sum(
            len(body["rows"]) for t in release.tables for body in [t, *(t.get("groups") or ())]
        )
    return time.perf_counter() - started, time.process_time() - cpu, audit, hidden, cells


def database_url(engine: str, directory: str, size: int) -> str:
    if engine == "sqlite":
        return f"sqlite:///{directory}/bench-{size}.db"
    from tests.conftest import fresh_pg_database

    return fresh_pg_database(f"hearme_bench_releases_{size}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--tables", default="10,50")
    parser.add_argument("--engine", default="sqlite", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    load = Path("/proc/loadavg").read_text().split()[:3] if os.path.exists("/proc/loadavg") else []
    print(f"engine {args.engine}; load before: {' '.join(load)}")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(uptime)
    with tempfile.TemporaryDirectory() as directory:
        for size in [int(s) for s in args.sizes.split(",")]:
            settings = Settings(database_url=database_url(args.engine, directory, size))
            upgrade(settings)
            db = Database(settings)
            definition = SurveyDefinition.model_validate(load_survey())
            with db.session(write=True) as session:
                create_survey(session, principal=ADMIN, data=definition)
            started = time.perf_counter()
            with db.session(write=True) as session:
                imported = import_into_survey(
                    session,
                    principal=ADMIN,
                    survey_id=definition.id,
                    body=io.BytesIO(rows(size, random.Random(size))),
                    media_type="application/x-ndjson",
                    batch_size=2000,
                )
            print(f"{size} responses imported in {time.perf_counter() - started:.1f} s")
            assert imported == size
            for count in [int(t) for t in args.tables.split(",")]:
                tables = specs(count)
                baseline, baseline_cpu = live(db, definition.id, tables)
                seconds, cpu, audit, hidden, cells = publish(
                    db, definition.id, tables, f"r{count}-{size}"
                )
                print(
                    json.dumps(
                        {
                            "responses": size,
                            "tables": count,
                            "publish_s": round(seconds, 2),
                            "publish_cpu_s": round(cpu, 2),
                            "live_tables_s": round(baseline, 2),
                            "live_tables_cpu_s": round(baseline_cpu, 2),
                            "ratio": round(seconds / baseline, 1),
                            "lp_variables": audit.variables,
                            "lp_constraints": audit.constraints,
                            "targets": audit.targets,
                            "secondary": audit.secondary,
                            "solves": audit.solves,
                            "audit_s": audit.seconds,
                            "withheld": audit.withheld_tables,
                            "row_cells_null": f"{hidden}/{cells}",
                        }
                    )
                )
            db.dispose()
    print(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
