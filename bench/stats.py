"""Statistics latency as a study grows: hearme's statistics against the raw SQL GROUP BY
that answers the same question, through the same driver, in the same run.

For each engine (SQLite in a temporary file, PostgreSQL in a new database that is dropped
at the end) and each size N, it:
  1. migrates, creates the seed survey and its codebook through the service, and bulk-loads
     N responses with realistic answers (the paper's distributions) and two coders'
     codings of every open answer, about 10% of them resolved by a consensus;
  2. builds the summary cells with `service.stats.cells.rebuild` (timed: set-up);
  3. measures p50 and p90 of each statistic through the service functions exactly as the
     router calls them, interleaved with the raw GROUP BY answering the same question on
     the same engine, and checks that both give the same counts;
  4. measures `cells.apply` for one response: what the cells add to every submission;
  5. at the sizes of `--http-sizes`, measures the same statistics over HTTP against
     `hearme serve`.

    /tmp/venv/bin/python bench/stats.py [--sizes 10000,100000,1000000]
        [--engines sqlite,postgresql] [--runs 30] [--warmup 3] [--http-sizes 1000000]

Nothing here asserts on timings: the targets are printed as met or not. The script exits
with status 1 only if hearme's counts differ from the raw query's.
"""

import argparse
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import orjson
from pydantic import BaseModel
from sqlalchemy import Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, SQLModel
from submit import DEFAULT_PG_ADMIN, env_for, free_port, hearme_command, pg_database, serve

from schemas.codebooks import CodebookIn
from schemas.codings import (
    Coding,
    CodingCategory,
    CodingOutcome,
    CodingStatus,
    Consensus,
    EffectiveCategory,
)
from schemas.keys import KeyCreate, Role
from schemas.responses import Answer, Response, SubmissionIn
from schemas.stats import StatCell
from schemas.surveys import SurveyDefinition
from service.answers import answer_rows
from service.coding.codebooks import codebook_of, put_codebook
from service.coding.codings import recompute_outcome, store_coding, store_consensus
from service.coding.outcome import outcome
from service.database import Database, upgrade
from service.imports import import_into_survey
from service.keys import Principal, create_key
from service.responses import Validated, store_validated
from service.seed import dataset
from service.settings import Settings
from service.stats import cells, columns, tables, themes
from service.stats.query import levels, resolve
from service.surveys import create_survey, load_compiled
from service.validation import CompiledSurvey

SURVEY_ID = dataset.SURVEY_ID
TEXT_QUESTION = dataset.TEXT_QUESTION
CODERS = ("coder-a", "coder-b")
CHUNK = 20_000  # responses per load batch
SIZES = (10_000, 100_000, 1_000_000)
ADMIN = Principal(key_id=0, name="bench-loader", role=Role.admin, sites=None)


# --- the statistics measured, each with its raw GROUP BY -----------------------------------

Counts = dict[str, int | None]
RawRows = Sequence[Any]


@dataclass(frozen=True)
class Stat:
    name: str
    kind: str  # composition, likert or themes
    question: str
    filters: tuple[tuple[str, str], ...] = ()
    by: str | None = None
    sites: tuple[str, ...] = ()
    target: bool = True  # the targets apply (False: shown for context)
    raw: str = ""  # one statement: rows of (kind, group, value, n)

    @property
    def path(self) -> str:
        return f"/v1/surveys/{SURVEY_ID}/stats/{self.kind}/{self.question}"

    @property
    def params(self) -> httpx.QueryParams:
        found = [("site", site) for site in self.sites] + [(f"q.{q}", v) for q, v in self.filters]
        return httpx.QueryParams(tuple(found + ([("by", self.by)] if self.by else [])))


RESPONSES = "SELECT 'base', NULL, NULL, COUNT(*) FROM response WHERE survey_id = :s"
# conditions on the answer rows r (role), g (gender), c (involvement) and t (confidence)
POLICE = " AND r.question_id = 'role' AND r.option = 'police'"
FEMALE = " AND g.question_id = 'gender' AND g.option = 'female'"
INVOLVED = " AND c.question_id = 'cse_case_involvement' AND c.option = 'true'"
CONFIDENT = " AND t.question_id = 'trust_confidence' AND t.number IN (4, 5)"


def _both(alias: str) -> str:
    """The joins that keep the rows of `alias` of police officers involved in a case."""
    return (
        f" JOIN answer r ON r.response_pk = {alias}.response_pk{POLICE}"
        f" JOIN answer c ON c.response_pk = {alias}.response_pk{INVOLVED}"
    )


STATS = (
    Stat(
        "composition role",
        "composition",
        "role",
        raw="SELECT 'v', NULL, option, COUNT(*) FROM answer"
        " WHERE survey_id = :s AND question_id = 'role' GROUP BY option"
        f" UNION ALL {RESPONSES}",
    ),
    Stat(
        "likert trust_confidence",
        "likert",
        "trust_confidence",
        raw="SELECT 'v', NULL, number, COUNT(*) FROM answer"
        " WHERE survey_id = :s AND question_id = 'trust_confidence' GROUP BY number"
        f" UNION ALL {RESPONSES}",
    ),
    Stat(
        "likert q.role=police",
        "likert",
        "trust_confidence",
        filters=(("role", "police"),),
        raw="SELECT 'v', NULL, l.number, COUNT(*) FROM answer l"
        " JOIN answer r ON r.response_pk = l.response_pk"
        " WHERE l.survey_id = :s AND l.question_id = 'trust_confidence'"
        " AND r.survey_id = :s AND r.question_id = 'role' AND r.option = 'police'"
        " GROUP BY l.number"
        " UNION ALL SELECT 'base', NULL, NULL, COUNT(*) FROM answer"
        " WHERE survey_id = :s AND question_id = 'role' AND option = 'police'",
    ),
    Stat(
        "likert by=site",
        "likert",
        "trust_confidence",
        by="site",
        raw="SELECT 'v', site, number, COUNT(*) FROM answer"
        " WHERE survey_id = :s AND question_id = 'trust_confidence' GROUP BY site, number"
        " UNION ALL SELECT 'base', site, NULL, COUNT(*) FROM response"
        " WHERE survey_id = :s GROUP BY site",
    ),
    Stat(
        "themes trust_actions",
        "themes",
        TEXT_QUESTION,
        raw=f"{RESPONSES}"
        " UNION ALL SELECT 'answered', NULL, NULL, COUNT(*) FROM answer"
        " WHERE survey_id = :s AND question_id = 'trust_actions'"
        " UNION ALL SELECT 'status', NULL, status, COUNT(*) FROM coding_outcome"
        " WHERE survey_id = :s AND question_id = 'trust_actions' GROUP BY status"
        " UNION ALL SELECT 'c', NULL, category_id, COUNT(*) FROM effective_category"
        " WHERE survey_id = :s AND question_id = 'trust_actions' GROUP BY category_id"
        " UNION ALL SELECT 't', NULL, k.theme_id, COUNT(DISTINCT e.response_pk)"
        " FROM effective_category e"
        " JOIN codebook b ON b.survey_id = e.survey_id AND b.question_id = e.question_id"
        " JOIN codebook_category k ON k.codebook_id = b.id AND k.category_id = e.category_id"
        " WHERE e.survey_id = :s AND e.question_id = 'trust_actions' GROUP BY k.theme_id",
    ),
    Stat(
        "likert site=site-2&q.role=police",
        "likert",
        "trust_confidence",
        filters=(("role", "police"),),
        sites=("site-2",),
        raw="SELECT 'v', NULL, l.number, COUNT(*) FROM answer l"
        f" JOIN answer r ON r.response_pk = l.response_pk{POLICE}"
        " WHERE l.survey_id = :s AND l.question_id = 'trust_confidence' AND l.site = 'site-2'"
        " GROUP BY l.number"
        " UNION ALL SELECT 'base', NULL, NULL, COUNT(*) FROM answer r"
        f" WHERE r.survey_id = :s{POLICE} AND r.site = 'site-2'",
    ),
    Stat(
        "likert by=role",
        "likert",
        "trust_confidence",
        by="role",
        raw="SELECT 'v', g.option, l.number, COUNT(*) FROM answer l"
        " LEFT JOIN answer g ON g.response_pk = l.response_pk AND g.question_id = 'role'"
        " WHERE l.survey_id = :s AND l.question_id = 'trust_confidence'"
        " GROUP BY g.option, l.number"
        " UNION ALL SELECT 'base', g.option, NULL, COUNT(*) FROM response r"
        " LEFT JOIN answer g ON g.response_pk = r.pk AND g.question_id = 'role'"
        " WHERE r.survey_id = :s GROUP BY g.option",
    ),
    Stat(
        "likert q.role&q.gender",
        "likert",
        "trust_confidence",
        filters=(("role", "police"), ("gender", "female")),
        raw="SELECT 'v', NULL, l.number, COUNT(*) FROM answer l"
        f" JOIN answer r ON r.response_pk = l.response_pk{POLICE}"
        f" JOIN answer g ON g.response_pk = l.response_pk{FEMALE}"
        " WHERE l.survey_id = :s AND l.question_id = 'trust_confidence'"
        " GROUP BY l.number"
        " UNION ALL SELECT 'base', NULL, NULL, COUNT(*) FROM answer r"
        f" JOIN answer g ON g.response_pk = r.response_pk{FEMALE}"
        f" WHERE r.survey_id = :s{POLICE}",
    ),
    Stat(
        "likert q.role by=gender",
        "likert",
        "trust_confidence",
        filters=(("role", "police"),),
        by="gender",
        raw="SELECT 'v', g.option, l.number, COUNT(*) FROM answer l"
        f" JOIN answer r ON r.response_pk = l.response_pk{POLICE}"
        " LEFT JOIN answer g ON g.response_pk = l.response_pk AND g.question_id = 'gender'"
        " WHERE l.survey_id = :s AND l.question_id = 'trust_confidence'"
        " GROUP BY g.option, l.number"
        " UNION ALL SELECT 'base', g.option, NULL, COUNT(*) FROM answer r"
        " LEFT JOIN answer g ON g.response_pk = r.response_pk AND g.question_id = 'gender'"
        f" WHERE r.survey_id = :s{POLICE} GROUP BY g.option",
    ),
    Stat(
        "composition role q.cse&q.conf by=site",
        "composition",
        "role",
        filters=(
            ("cse_case_involvement", "true"),
            ("trust_confidence", "4"),
            ("trust_confidence", "5"),
        ),
        by="site",
        raw="SELECT 'v', l.site, l.option, COUNT(*) FROM answer l"
        f" JOIN answer c ON c.response_pk = l.response_pk{INVOLVED}"
        f" JOIN answer t ON t.response_pk = l.response_pk{CONFIDENT}"
        " WHERE l.survey_id = :s AND l.question_id = 'role' GROUP BY l.site, l.option"
        " UNION ALL SELECT 'base', c.site, NULL, COUNT(*) FROM answer c"
        f" JOIN answer t ON t.response_pk = c.response_pk{CONFIDENT}"
        f" WHERE c.survey_id = :s{INVOLVED} GROUP BY c.site",
    ),
    Stat(
        "themes q.role&q.cse",
        "themes",
        TEXT_QUESTION,
        filters=(("role", "police"), ("cse_case_involvement", "true")),
        raw="SELECT 'base', NULL, NULL, COUNT(*) FROM answer r"
        f" JOIN answer c ON c.response_pk = r.response_pk{INVOLVED}"
        f" WHERE r.survey_id = :s{POLICE}"
        " UNION ALL SELECT 'answered', NULL, NULL, COUNT(*) FROM answer a"
        f"{_both('a')} WHERE a.survey_id = :s AND a.question_id = 'trust_actions'"
        " UNION ALL SELECT 'status', NULL, o.status, COUNT(*) FROM coding_outcome o"
        f"{_both('o')} WHERE o.survey_id = :s AND o.question_id = 'trust_actions'"
        " GROUP BY o.status"
        " UNION ALL SELECT 'c', NULL, e.category_id, COUNT(*) FROM effective_category e"
        f"{_both('e')} WHERE e.survey_id = :s AND e.question_id = 'trust_actions'"
        " GROUP BY e.category_id"
        " UNION ALL SELECT 't', NULL, k.theme_id, COUNT(DISTINCT e.response_pk)"
        " FROM effective_category e"
        " JOIN codebook b ON b.survey_id = e.survey_id AND b.question_id = e.question_id"
        " JOIN codebook_category k ON k.codebook_id = b.id AND k.category_id = e.category_id"
        f"{_both('e')} WHERE e.survey_id = :s AND e.question_id = 'trust_actions'"
        " GROUP BY k.theme_id",
    ),
)

TABLES: dict[str, Callable[..., BaseModel]] = {
    "composition": tables.composition,
    "likert": tables.likert,
    "themes": partial(themes.themes, codebook_of=codebook_of),
}
CODED = {s.value for s in (CodingStatus.single, CodingStatus.agreed, CodingStatus.resolved)}


def _key(value: Any) -> str:
    """One spelling for a value from JSON or from either driver (4, 4.0, '4', True)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def body_counts(body: dict[str, Any]) -> Counts:
    """The counts of a statistics body (service or HTTP), keyed for comparison."""
    found: Counts = {}

    def table(prefix: str, part: dict[str, Any]) -> None:
        if "themes" in part:
            for name in ("n_responses", "n_answered", "n_coded", "n_disputed"):
                found[prefix + name] = part[name]
            for theme in part["themes"]:
                found[f"{prefix}t:{theme['id']}"] = theme["respondents"]
                for category in theme["categories"]:
                    found[f"{prefix}c:{category['id']}"] = category["respondents"]
            return
        found[prefix + "n"] = part["n"]
        found[prefix + "missing"] = part["missing"]
        for row in part["rows"]:
            found[f"{prefix}v:{_key(row['value'])}"] = row["count"]

    table("", body)
    for group in body.get("groups") or ():
        table(f"{_key(group['value'])}/", group)
    return {k: v for k, v in found.items() if v != 0}


def raw_counts(stat: Stat, rows: RawRows, groups: Sequence[str]) -> Counts:
    """The same counts from the raw rows (kind, group, value, n); totals derived here."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for kind, group, value, n in rows:
        keys = [""] + ([f"{_key(group)}/"] if group is not None else [])
        for prefix in keys:
            per[prefix][f"{kind}:{_key(value)}" if value is not None else kind] += int(n)
    found: Counts = {}
    for prefix in [""] + [f"{g}/" for g in groups]:
        counts = per.get(prefix, {})
        base = counts.get("base", 0)
        if stat.kind == "themes":
            statuses = {k[7:]: n for k, n in counts.items() if k.startswith("status:")}
            found[prefix + "n_responses"] = base
            found[prefix + "n_answered"] = counts.get("answered", 0)
            found[prefix + "n_coded"] = sum(n for s, n in statuses.items() if s in CODED)
            found[prefix + "n_disputed"] = statuses.get(CodingStatus.disputed.value, 0)
            for k, n in counts.items():
                if k.startswith(("t:", "c:")):
                    found[prefix + k] = n
        else:
            answered = sum(n for k, n in counts.items() if k.startswith("v:"))
            found[prefix + "n"] = answered
            found[prefix + "missing"] = base - answered
            found.update({prefix + k: n for k, n in counts.items() if k.startswith("v:")})
    return {k: v for k, v in found.items() if v != 0}


# --- the data set ----------------------------------------------------------------------------


def _weighted(counts: Sequence[tuple[Any, int]]) -> tuple[list[Any], list[int]]:
    values = [v for v, _ in counts]
    cumulative, total = [], 0
    for _, n in counts:
        total += n
        cumulative.append(total)
    return values, cumulative


class Generator:
    """Realistic responses, drawn from the paper's distributions with a fixed seed, and the
    rows the service would store for them."""

    def __init__(self, compiled: CompiledSurvey, seed: int) -> None:
        self.compiled = compiled
        self.rng = random.Random(seed)
        self.sites = _weighted(dataset.SITE_COUNTS)
        self.roles = _weighted(dataset.ROLE_COUNTS)
        self.genders = _weighted(dataset.GENDER_COUNTS)
        self.ages = _weighted(dataset.AGE_COUNTS)
        self.ethnicities = _weighted(dataset.ETHNICITY_COUNTS)
        self.sizes = _weighted(dataset.ANSWER_SIZES[:3])  # 1 to 3 categories per answer
        self.categories = _weighted(dataset.CATEGORY_COUNTS)
        self.likert = {
            "midway": _weighted(dataset.LIKERT_COUNTS),
            "final": _weighted(((1, 10), (2, 40), (3, 50), (4, 85), (5, 20))),
        }
        self.waves = {w.id: w for w in compiled.definition.waves}
        themes_of = dataset.load_codebook()["themes"]
        self.neighbours: dict[str, list[str]] = {}
        for theme in themes_of:
            ids = [c["id"] for c in theme["categories"]]
            for i, category in enumerate(ids):
                self.neighbours[category] = [ids[j] for j in (i - 1, i + 1) if 0 <= j < len(ids)]
        self.coding_id = 0
        self.consensus_id = 0
        self.now = datetime.now(UTC)

    def pick(self, weighted: tuple[list[Any], list[int]]) -> Any:
        values, cumulative = weighted
        return self.rng.choices(values, cum_weights=cumulative)[0]

    def answers(self, wave: str) -> tuple[dict[str, Any], list[str]]:
        rng = self.rng
        categories: list[str] = []
        answers: dict[str, Any] = {
            "role": self.pick(self.roles),
            "trust_confidence": self.pick(self.likert[wave]),
        }
        gender = self.pick(self.genders)
        if gender is not None:
            answers["gender"] = gender
        if rng.random() < 0.95:
            answers["age_band"] = self.pick(self.ages)
        if rng.random() < 0.95:
            answers["ethnicity"] = self.pick(self.ethnicities)
        if rng.random() < 0.9:
            answers["years_in_post"] = round(rng.uniform(0.1, 25.0), 1)
        if rng.random() < 0.9:
            answers["cse_case_involvement"] = rng.random() < 0.6
        if rng.random() < 0.8:
            size = self.pick(self.sizes)
            while len(categories) < size:
                category = self.pick(self.categories)
                if category not in categories:
                    categories.append(category)
            answers[TEXT_QUESTION] = dataset.compose_answer(rng, categories)
        return answers, categories

    def other_coder(self, chosen: list[str]) -> list[str]:
        """Coder B's set where it differs: a category missed, confused or added."""
        rng = self.rng
        kind = rng.choice(("missed", "confused", "extra"))
        options = [(c, n) for c in chosen for n in self.neighbours[c] if n not in chosen]
        if (kind == "missed" and len(chosen) >= 2) or not options:
            dropped = rng.choice(chosen)
            return [c for c in chosen if c != dropped]
        category, neighbour = rng.choice(options)
        if kind == "extra":
            return [*chosen, neighbour]
        return [neighbour if c == category else c for c in chosen]

    def draw(self, pk: int) -> "Drawn":
        """The next response: where and when, its answers, and its coders' sets."""
        rng = self.rng
        site = self.pick(self.sites)
        wave = "midway" if rng.random() < 0.55 else "final"
        opens = self.waves[wave].opens_at or self.now
        received = opens + timedelta(seconds=rng.randrange(120 * 24 * 3600))
        drawn, categories = self.answers(wave)
        answers, problems = self.compiled.validate_answers(drawn)
        if problems:
            raise RuntimeError(f"generated answers are not valid: {problems}")
        sets: list[list[str]] = []
        consensus = None
        if categories:
            chosen = sorted(categories)
            differs = rng.random() < 0.1
            sets = [chosen, sorted(self.other_coder(chosen)) if differs else chosen]
            consensus = chosen if differs else None
        uid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        return Drawn(pk, uid, site, wave, received, answers, sets, consensus)

    def chunk(self, first_pk: int, count: int) -> dict[type[SQLModel], list[dict[str, Any]]]:
        """The bulk loader's rows for the next `count` responses."""
        rows: dict[type[SQLModel], list[dict[str, Any]]] = {
            t: []
            for t in (
                Response,
                Answer,
                Coding,
                Consensus,
                CodingCategory,
                CodingOutcome,
                EffectiveCategory,
            )
        }
        for pk in range(first_pk, first_pk + count):
            d = self.draw(pk)
            rows[Response].append(
                {
                    "pk": pk,
                    "id": d.id,
                    "survey_id": SURVEY_ID,
                    "site": d.site,
                    "wave": d.wave,
                    "received_at": d.received,
                    "submitted_at": None,
                    "submitted_by": "bench-loader",
                    "answers": d.answers,
                }
            )
            rows[Answer].extend(
                answer_rows(
                    self.compiled, response_pk=pk, site=d.site, wave=d.wave, answers=d.answers
                )
            )
            if d.sets:
                self._code(rows, d)
        return rows

    def _code(self, rows: dict[type[SQLModel], list[dict[str, Any]]], d: "Drawn") -> None:
        common = {"survey_id": SURVEY_ID, "question_id": TEXT_QUESTION}
        coded_at = d.received + timedelta(days=30)
        for coder, categories in zip(CODERS, d.sets, strict=True):
            self.coding_id += 1
            rows[Coding].append(
                {
                    "id": self.coding_id,
                    "response_pk": d.pk,
                    "coder": coder,
                    "categories": categories,
                    "coded_at": coded_at,
                    **common,
                }
            )
            rows[CodingCategory].extend(
                {"coding_id": self.coding_id, "consensus_id": None, "category_id": c, **common}
                for c in categories
            )
        if d.consensus is not None:
            self.consensus_id += 1
            rows[Consensus].append(
                {
                    "id": self.consensus_id,
                    "response_pk": d.pk,
                    "categories": d.consensus,
                    "set_by": "evaluator",
                    "set_at": coded_at + timedelta(days=7),
                    **common,
                }
            )
            rows[CodingCategory].extend(
                {"coding_id": None, "consensus_id": self.consensus_id, "category_id": c, **common}
                for c in d.consensus
            )
        # The service's own rule, not one of ours (`service.coding.outcome.outcome`).
        consensus = frozenset(d.consensus) if d.consensus is not None else None
        status, effective = outcome([frozenset(s) for s in d.sets], consensus)
        placed = {"response_pk": d.pk, "site": d.site, "wave": d.wave, **common}
        rows[CodingOutcome].append({**placed, "status": status.value, "effective": effective})
        rows[EffectiveCategory].extend({**placed, "category_id": c} for c in effective or [])


@dataclass
class Drawn:
    pk: int
    id: str
    site: str
    wave: str
    received: datetime
    answers: dict[str, Any]
    sets: list[list[str]]  # coder A's and coder B's, or none for a blank answer
    consensus: list[str] | None


# --- loading ---------------------------------------------------------------------------------


def loader_engine(url: str) -> Engine:
    """An engine for the bulk load only: on SQLite without fsync and with a large cache."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":

        def pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA cache_size=-524288")  # 512 MiB
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        event.listen(engine, "connect", pragmas)
    return engine


JSON_COLUMNS = {"answers", "categories", "effective"}


def _copy(engine: Engine, rows: dict[type[SQLModel], list[dict[str, Any]]]) -> None:
    """PostgreSQL: COPY every table's rows in one transaction."""
    raw = engine.raw_connection()
    try:
        connection = raw.driver_connection
        assert connection is not None
        with connection.cursor() as cursor:
            for model, batch in rows.items():
                if not batch:
                    continue
                columns = list(batch[0])
                table = model.__tablename__
                sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for row in batch:
                        copy.write_row(
                            [json.dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in columns]
                        )
        connection.commit()
    finally:
        raw.close()


IMPORT_CHUNK = 50_000  # rows per import request
CODED_BY_SERVICE = 500  # responses whose open answer the import loader codes


def load_through_import(db: Database, compiled: CompiledSurvey, n: int, seed: int) -> None:
    """The default loader, for every size: the responses as NDJSON through the import
    service (`import_into_survey`, as `POST .../responses:import` calls it, in requests of
    `IMPORT_CHUNK` rows, each one transaction storing batches of `import_batch_size`), then
    the first `CODED_BY_SERVICE` open answers coded by two coders through the coding
    service (coding a million answers by hand is not what a study does)."""
    generator = Generator(compiled, seed)
    batch_size = Settings.model_fields["import_batch_size"].default
    coded: list[Drawn] = []
    for first in range(1, n + 1, IMPORT_CHUNK):
        drawn = [generator.draw(pk) for pk in range(first, min(first + IMPORT_CHUNK, n + 1))]
        body = b"\n".join(
            orjson.dumps(
                {
                    "site": d.site,
                    "wave": d.wave,
                    "submitted_at": d.received.isoformat(),
                    "answers": d.answers,
                }
            )
            for d in drawn
        )
        with db.session(write=True) as session:
            import_into_survey(
                session,
                principal=ADMIN,
                survey_id=SURVEY_ID,
                body=io.BytesIO(body),
                media_type="application/x-ndjson",
                batch_size=batch_size,
            )
        coded += [d for d in drawn if d.sets and len(coded) < CODED_BY_SERVICE]
        print(f"    imported {first - 1 + len(drawn):,} responses", flush=True)
    with db.session(write=True) as session:
        for d in coded[:CODED_BY_SERVICE]:
            response = session.get(Response, d.pk)
            assert response is not None
            _code(session, response, d)
    print(f"    coded {min(len(coded), CODED_BY_SERVICE):,} open answers", flush=True)
    if db.engine.dialect.name == "postgresql":  # what autovacuum does after a large load
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))


def _code(session: Session, response: Response, d: "Drawn") -> None:
    for coder, categories in zip(CODERS, d.sets, strict=True):
        store_coding(
            session,
            response=response,
            question_id=TEXT_QUESTION,
            coder=coder,
            categories=categories,
        )
    if d.consensus is not None:
        store_consensus(
            session,
            response=response,
            question_id=TEXT_QUESTION,
            set_by="evaluator",
            categories=d.consensus,
        )
    recompute_outcome(session, response=response, question_id=TEXT_QUESTION)


def load_through_service(db: Database, compiled: CompiledSurvey, n: int, seed: int) -> None:
    """The default loader: every row written by the service's own functions, as live
    submissions and coding would write them (so a change of schema or rule cannot leave
    the benchmark measuring data the service would never hold): `store_validated` for
    responses and answers (multi-row, with their cells), then `store_coding`,
    `store_consensus` and `recompute_outcome` for every coded answer."""
    generator = Generator(compiled, seed)
    chunk = 2_000
    for first in range(1, n + 1, chunk):
        drawn = [generator.draw(pk) for pk in range(first, min(first + chunk, n + 1))]
        with db.session(write=True) as session:
            stored = store_validated(
                session,
                compiled,
                [
                    Validated(
                        SubmissionIn(site=d.site, wave=d.wave, answers=d.answers),
                        d.answers,
                        d.received,
                        "bench-loader",
                    )
                    for d in drawn
                ],
            )
            for d, (pk, values) in zip(drawn, stored, strict=True):
                if d.sets:
                    _code(session, Response(pk=pk, **values), d)
        done = first - 1 + len(drawn)
        if done % 20_000 == 0 or done == n:
            print(f"    loaded {done:,} responses through the service", flush=True)


def load(url: str, compiled: CompiledSurvey, n: int, seed: int) -> None:
    """The bulk loader (`--loader bulk`, for the largest sizes): the same draws as
    `load_through_service`, written with COPY or multi-row inserts from the service's row
    builders and status rule; tests/service/test_bench_stats.py holds it to the service
    loader at small N."""
    generator = Generator(compiled, seed)
    engine = loader_engine(url)
    postgres = engine.dialect.name == "postgresql"
    try:
        for first in range(1, n + 1, CHUNK):
            rows = generator.chunk(first, min(CHUNK, n + 1 - first))
            if postgres:
                _copy(engine, rows)
            else:
                with engine.begin() as conn:
                    for model, batch in rows.items():
                        if batch:
                            conn.execute(insert(model), batch)
            done = first - 1 + len(rows[Response])
            if done % 200_000 == 0 or done == n:
                print(f"    loaded {done:,} responses", flush=True)
        if postgres:
            with engine.begin() as conn:
                for table, column in (
                    ("response", "pk"),
                    ("coding", "id"),
                    ("coding_consensus", "id"),
                ):
                    conn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"
                            f" GREATEST((SELECT MAX({column}) FROM {table}), 1))"
                        )
                    )
            # What autovacuum does after a bulk load: statistics for the planner and a
            # visibility map for index-only scans (which the raw GROUP BYs use).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Measured:
    engine: str
    n: int
    stat: Stat
    hearme: list[float] = field(default_factory=list)
    sql: list[float] = field(default_factory=list)  # the service without its in-memory copy
    raw: list[float] = field(default_factory=list)
    http: list[float] = field(default_factory=list)

    @staticmethod
    def p50(times: list[float]) -> float:
        return statistics.median(times) * 1000 if times else float("nan")

    @staticmethod
    def p90(times: list[float]) -> float:
        if len(times) < 2:
            return float("nan")
        return statistics.quantiles(times, n=10, method="inclusive")[8] * 1000


@dataclass
class Setup:
    engine: str
    n: int
    load_s: float
    rebuild_s: float
    cells: int
    answers: int
    effective: int
    size_mb: float
    load_avg: float = field(default_factory=lambda: os.getloadavg()[0])
    upkeep_ms: float = float("nan")  # p50 of one response's cells.apply (what a submit adds)


class Study:
    """One loaded database and the ways to ask it for statistics."""

    def __init__(self, db: Database, settings: Settings, principal: Principal) -> None:
        self.db = db
        self.settings = settings
        self.principal = principal
        self.statements = {s.name: text(s.raw) for s in STATS}

    def sql(self, stat: Stat) -> BaseModel:
        """`service`, with the process's in-memory copy declining: what the narrow table's
        SQL scan (and the cells) give, as before the copy."""
        with mock.patch.object(columns, "count", return_value=None):
            return self.service(stat)

    def warm(self) -> None:
        """Load the process's in-memory copy of the study's rows (`columns.warm`)."""
        with self.db.session(write=False) as session:
            columns.warm(session, load_compiled(session, survey_id=SURVEY_ID))

    def service(self, stat: Stat) -> BaseModel:
        """As the router: a read session, the compiled survey, `resolve`, the table."""
        with self.db.session(write=False) as session:
            compiled = load_compiled(session, survey_id=SURVEY_ID)
            query = resolve(
                compiled,
                principal=self.principal,
                sites=list(stat.sites),
                waves=[],
                filters=list(stat.filters),
                by=stat.by,
                min_cell=None,
            )
            return TABLES[stat.kind](session, compiled, question_id=stat.question, query=query)

    def groups(self, by: str | None) -> list[str]:
        """The keys of the groups of `by`, as `_key` spells them."""
        if by is None:
            return []
        with self.db.session(write=False) as session:
            compiled = load_compiled(session, survey_id=SURVEY_ID)
        if by == "site":
            return [site.id for site in compiled.definition.sites]
        if by == "wave":
            return [wave.id for wave in compiled.definition.waves]
        return [level.key for level in levels(compiled.questions[by])]

    def raw(self, stat: Stat) -> RawRows:
        with self.db.engine.connect() as conn:
            return conn.execute(self.statements[stat.name], {"s": SURVEY_ID}).all()


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure_service(
    study: Study, engine: str, n: int, args: argparse.Namespace
) -> tuple[list[Measured], list[str]]:
    results, mismatches = [], []
    columns.forget_all()  # loaded afresh and timed (a server loads large ones in a thread)
    loaded_s, _ = timed(study.warm)
    print(f"    in-memory copy loaded in {loaded_s:.2f} s", flush=True)
    for stat in STATS:
        m = Measured(engine, n, stat)
        for _ in range(args.warmup):
            study.service(stat)
            study.raw(stat)
        runs = args.runs if stat.target else min(args.runs, args.context_runs)
        for i in range(runs):  # interleaved, so that drift affects all alike
            elapsed, body = timed(partial(study.service, stat))
            m.hearme.append(elapsed)
            if i < args.sql_runs:
                elapsed, scanned = timed(partial(study.sql, stat))
                m.sql.append(elapsed)
            elapsed, rows = timed(partial(study.raw, stat))
            m.raw.append(elapsed)
        groups = study.groups(stat.by)
        mine = body_counts(body.model_dump(mode="json"))
        theirs = raw_counts(stat, rows, groups)
        if mine != theirs:
            mismatches.append(f"{engine} N={n} {stat.name}: hearme {mine} != raw {theirs}")
        if m.sql and body_counts(scanned.model_dump(mode="json")) != mine:
            mismatches.append(f"{engine} N={n} {stat.name}: the SQL path differs from the copy")
        results.append(m)
        print(
            f"    {stat.name:<30} hearme p50 {m.p50(m.hearme):8.2f} ms"
            f"   SQL path p50 {m.p50(m.sql):8.2f} ms   raw p50 {m.p50(m.raw):8.2f} ms",
            flush=True,
        )
    return results, mismatches


def measure_upkeep(db: Database, n: int, args: argparse.Namespace) -> float:
    """What the cells add to a submission at this size: one response's `cells.apply`, as
    `service.responses` runs it after storing the rows. Each run takes the response's
    cells away (untimed), then adds them back (timed): the cells stay exact."""
    times = []
    rng = random.Random(args.seed)
    for i in range(args.warmup + args.runs):
        pk = rng.randint(1, n)
        with db.session(write=True) as session:
            compiled = load_compiled(session, survey_id=SURVEY_ID)
            apply = partial(
                cells.apply, session, compiled, response_pks=[pk], sources=cells.ANSWER_SOURCES
            )
            apply(sign=-1)
            elapsed, _ = timed(partial(apply, sign=1))
        if i >= args.warmup:
            times.append(elapsed)
    return Measured.p50(times)


def measure_http(
    study: Study, url: str, token: str, measured: list[Measured], args: argparse.Namespace
) -> list[str]:
    """The same statistics through `hearme serve` (one worker), one request at a time."""
    mismatches = []
    port = free_port()
    command = [*hearme_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with (
        tempfile.TemporaryDirectory(prefix="hearme-bench-") as tmp,
        serve(command, env_for(url), Path(tmp) / "serve.log", port),
        httpx.Client(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
        ) as client,
    ):
        for m in measured:
            stat = m.stat
            for _ in range(args.warmup):
                client.get(stat.path, params=stat.params).raise_for_status()
            for _ in range(args.runs if stat.target else min(args.runs, args.context_runs)):
                elapsed, response = timed(partial(client.get, stat.path, params=stat.params))
                response.raise_for_status()
                m.http.append(elapsed)
            over_http = body_counts(response.json())
            in_process = body_counts(study.service(stat).model_dump(mode="json"))
            if over_http != in_process:
                mismatches.append(f"{m.engine} N={m.n} {stat.name}: HTTP body differs")
            print(f"    {stat.name:<30} HTTP p50 {m.p50(m.http):8.2f} ms", flush=True)
    return mismatches


@contextmanager
def database(engine: str, args: argparse.Namespace) -> Iterator[str]:
    if args.reuse:  # the caller's database: filled once, kept
        yield args.reuse
    elif engine == "postgresql":
        with pg_database(args.pg_admin_url) as url:
            yield url
    else:
        with tempfile.TemporaryDirectory(prefix="hearme-bench-stats-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'stats.db'}"


def _logical_cells() -> Any:
    """The cells as the statistics read them: one per key, its shards summed (how many rows
    hold a cell depends on how the writes were batched, not on what they counted)."""
    keys = [c for c in StatCell.__table__.c if c.name not in ("shard", "n")]  # type: ignore[attr-defined]
    return (
        select(*keys)
        .group_by(*keys)
        .having(func.sum(StatCell.__table__.c.n) != 0)  # type: ignore[attr-defined]
        .subquery()
    )


def file_size_mb(url: str, db: Database) -> float:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        path = Path(parsed.database)
        wal = path.with_name(path.name + "-wal")
        return (path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)) / 2**20
    with db.engine.connect() as conn:
        size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    return int(size) / 2**20


def run_size(
    engine: str, n: int, args: argparse.Namespace
) -> tuple[Setup, list[Measured], list[str]]:
    with database(engine, args) as url, ExitStack() as stack:
        settings = Settings(database_url=url, db_statement_timeout=0)  # set-up may take minutes
        upgrade(settings)
        db = Database(settings)
        stack.callback(db.dispose)
        with db.session() as session:
            loaded = cells.stored_responses(session, survey_id=SURVEY_ID)
        if loaded and loaded != n:
            raise SystemExit(f"--reuse: the database holds {loaded:,} responses, not {n:,}")
        if not loaded:
            with db.session() as session:
                create_survey(
                    session,
                    principal=ADMIN,
                    data=SurveyDefinition.model_validate(dataset.load_survey()),
                )
            with db.session() as session:
                put_codebook(
                    session,
                    load_compiled(session, survey_id=SURVEY_ID),
                    principal=ADMIN,
                    question_id=TEXT_QUESTION,
                    data=CodebookIn.model_validate(dataset.load_codebook()),
                )
        role = Role(args.role)
        with db.session() as session:
            compiled = load_compiled(session, survey_id=SURVEY_ID)
            key, token = create_key(
                session, data=KeyCreate(name=f"bench-stats-{uuid.uuid4().hex[:6]}", role=role)
            )
            assert key.id is not None
            principal = Principal(key_id=key.id, name=key.name, role=role, sites=None)
        print(f"  {engine} N={n:,}: loading ...", flush=True)
        if loaded:
            load_s = float("nan")
        elif args.loader == "bulk":
            load_s, _ = timed(lambda: load(url, compiled, n, args.seed))
        elif args.loader == "import":
            load_s, _ = timed(lambda: load_through_import(db, compiled, n, args.seed))
        else:
            load_s, _ = timed(lambda: load_through_service(db, compiled, n, args.seed))
        print(f"    loaded in {load_s:.1f} s; rebuilding the cells ...", flush=True)

        def rebuild() -> None:
            with db.session(write=True) as session:
                cells.rebuild(session, load_compiled(session, survey_id=SURVEY_ID))

        # the service's loaders keep the cells as they write; only bulk rows need counting
        bulk = args.loader == "bulk" and not loaded
        rebuild_s, _ = timed(rebuild) if bulk else (float("nan"), None)
        if args.load_only:
            return Setup(engine, n, load_s, rebuild_s, 0, 0, 0, file_size_mb(url, db)), [], []
        with db.session(write=False) as session:
            counts = [
                int(session.execute(select(func.count()).select_from(model)).scalar_one())
                for model in (_logical_cells(), Answer, EffectiveCategory)
            ]
        cell_rows, answer_count, effective_count = counts
        setup = Setup(
            engine,
            n,
            load_s,
            rebuild_s,
            cell_rows,
            answer_count,
            effective_count,
            file_size_mb(url, db),
        )
        print(
            f"    cells rebuilt in {rebuild_s:.1f} s: {counts[0]:,} cells from"
            f" {counts[1]:,} answer and {counts[2]:,} effective_category rows;"
            f" database {setup.size_mb:,.0f} MiB",
            flush=True,
        )
        study = Study(db, settings, principal)
        measured, mismatches = measure_service(study, engine, n, args)
        setup.upkeep_ms = measure_upkeep(db, n, args)
        print(f"    cells upkeep of one response p50 {setup.upkeep_ms:.2f} ms", flush=True)
        if n in args.http_sizes:
            mismatches += measure_http(study, url, token, measured, args)
    return setup, measured, mismatches


# --- report ----------------------------------------------------------------------------------


def report(setups: list[Setup], measured: list[Measured], args: argparse.Namespace) -> None:
    print("\nSet-up (bulk load, then `cells.rebuild`):")
    print(
        f"{'engine':<11} {'N':>9} {'answer rows':>12} {'load s':>8} {'rebuild s':>10}"
        f" {'cells':>8} {'MiB':>7} {'loadavg':>8} {'upkeep ms':>10}"
    )
    for s in setups:
        print(
            f"{s.engine:<11} {s.n:>9,} {s.answers:>12,} {s.load_s:>8.1f} {s.rebuild_s:>10.1f}"
            f" {s.cells:>8,} {s.size_mb:>7,.0f} {s.load_avg:>8.1f} {s.upkeep_ms:>10.2f}"
        )
    print(
        "upkeep: p50 of `cells.apply` for one response (what maintaining the cells adds to"
        " each submission, besides storing its rows)"
    )
    print(
        f"\nLatency in ms over {args.runs} runs after {args.warmup} warm-up(s);"
        " hearme = service functions as the router calls them (from the in-memory copy);"
        " SQL path = the same without the copy (narrow-table scan); raw = one GROUP BY statement"
    )
    header = (
        f"{'engine':<11} {'N':>9}  {'statistic':<30} {'hearme p50':>10} {'p90':>8}"
        f" {'SQL path':>9} {'raw p50':>9} {'p90':>8} {'ratio':>7} {'HTTP p50':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in measured:
        http = f"{m.p50(m.http):9.2f}" if m.http else f"{'-':>9}"
        print(
            f"{m.engine:<11} {m.n:>9,}  {m.stat.name:<30} {m.p50(m.hearme):10.2f}"
            f" {m.p90(m.hearme):8.2f} {m.p50(m.sql):9.2f} {m.p50(m.raw):9.2f} {m.p90(m.raw):8.2f}"
            f" {m.p50(m.hearme) / m.p50(m.raw):7.3f} {http}"
        )
    targets(measured)


def targets(measured: list[Measured]) -> None:
    largest, smallest = max(m.n for m in measured), min(m.n for m in measured)
    print(f"\nTargets at N={largest:,} (the issue's are at 1,000,000):")
    for m in measured:
        if m.n != largest or not m.stat.target:
            continue
        p50, ratio = m.p50(m.hearme), m.p50(m.hearme) / m.p50(m.raw)
        checks = [f"ratio {ratio:.3f} {'<=' if ratio <= 1.5 else '>'} 1.5"]
        met = ratio <= 1.5
        checks.insert(0, f"p50 {p50:.2f} ms {'<' if p50 < 100 else '>='} 100 ms")
        met = met and p50 < 100  # issue 15: on both engines
        if largest > smallest:
            first = next(
                x.p50(x.hearme)
                for x in measured
                if x.n == smallest and x.engine == m.engine and x.stat == m.stat
            )
            growth, allowed = p50 / first, largest / smallest
            checks.append(f"growth x{growth:.2f} {'<=' if growth <= allowed else '>'} x{allowed:g}")
            met = met and growth <= allowed
        verdict = "met    " if met else "NOT MET"
        print(f"  {verdict} {m.engine:<11} {m.stat.name:<30} {'; '.join(checks)}")


def _sizes(value: str) -> list[int]:
    return [int(v.replace("_", "")) for v in value.split(",") if v]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=_sizes, default=list(SIZES))
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--context-runs",
        type=int,
        default=5,
        help="runs of the statistics outside the targets (the row-counted fallback)",
    )
    parser.add_argument(
        "--http-sizes", type=_sizes, default=None, help="default: the largest of --sizes"
    )
    parser.add_argument(
        "--sql-runs",
        type=int,
        default=5,
        help="runs of each statistic without the in-memory copy (the SQL path, for context)",
    )
    parser.add_argument("--role", choices=["evaluator", "reader", "admin"], default="evaluator")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--loader",
        choices=["import", "service", "bulk"],
        default="import",
        help="NDJSON through the import service (default), every row and coding through"
        " the service's functions, or in bulk (direct table writes)",
    )
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get("HEARME_TEST_PG_URL", DEFAULT_PG_ADMIN),
        help="where to create (and drop) the PostgreSQL database",
    )
    parser.add_argument(
        "--reuse",
        default=None,
        help="a database URL to fill once (if it holds no responses) and keep: one engine"
        " and one size; a large study is then loaded once and measured by many runs",
    )
    parser.add_argument("--load-only", action="store_true", help="fill --reuse and stop")
    args = parser.parse_args()
    if args.reuse and len(args.sizes) != 1:
        parser.error("--reuse takes one size")
    if args.http_sizes is None:
        args.http_sizes = [max(args.sizes)]
    engines = [e for e in args.engines.split(",") if e]
    if set(engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite and/or postgresql")
    print(
        f"Python {sys.version.split()[0]}, sizes {args.sizes}, engines {engines},"
        f" role {args.role}, {args.runs} runs after {args.warmup} warm-up(s)",
        flush=True,
    )
    setups, measured, mismatches = [], [], []
    for engine in engines:
        for n in sorted(args.sizes):
            setup, found, wrong = run_size(engine, n, args)
            setups.append(setup)
            measured += found
            mismatches += wrong
    if args.load_only:
        print(f"loaded: {setups}")
        return
    report(setups, measured, args)
    if mismatches:
        print("\nhearme's counts differ from the raw query's:")
        for line in mismatches:
            print(f"  {line}")
        sys.exit(1)


if __name__ == "__main__":
    main()
