"""Data sets for the statistics tests, and the statistics of §7 recomputed from them in
plain Python, independently of `service/stats`: the endpoints are checked against what
the test itself submitted, never against another call of the same code."""

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi.testclient import TestClient

from tests.conftest import survey_definition

SITES = ("site-1", "site-2")
WAVES = ("midway", "final")
LEVELS: dict[str, tuple[Any, ...]] = {
    "role": ("police", "health", "other"),
    "agencies": ("police", "school", "ngo"),
    "trust_confidence": (1, 2, 3, 4, 5),
    "involved": (True, False),
}
MULTI = ("agencies",)
AT = "2016-08-02T10:00:00Z"

Headers = dict[str, str]
Params = Sequence[tuple[str, str]]
Json = dict[str, Any]


def open_definition(survey_id: str = "trust") -> Json:
    """The fixture's survey with both waves open and only `role` required, so that every
    question but `role` can go unanswered and both waves take live submissions."""
    definition = survey_definition(id=survey_id)
    for wave in definition["waves"]:
        wave["opens_at"] = wave["closes_at"] = None
    for question in definition["questions"]:
        question["required"] = question["id"] == "role"
    return definition


def create_survey(client: TestClient, admin: Headers, survey_id: str = "trust") -> None:
    created = client.post("/v1/surveys", json=open_definition(survey_id), headers=admin)
    assert created.status_code == 201, created.text


@dataclass(frozen=True)
class Row:
    """One submitted response: `answers` holds only the questions it answered."""

    site: str = "site-1"
    wave: str = "midway"
    answers: Json = field(default_factory=lambda: {"role": "police"})

    def value(self, question: str) -> Any:
        return self.answers.get(question)


def row(site: str = "site-1", wave: str = "midway", **answers: Any) -> Row:
    return Row(site, wave, {"role": "police", **answers})


def random_rows(
    rng: random.Random, n: int, *, answer_rate: float = 0.85, text: bool = False
) -> list[Row]:
    """`n` responses with skewed value frequencies, so that small cells are common."""
    rows = []
    for _ in range(n):
        answers: Json = {"role": rng.choices(LEVELS["role"], weights=(6, 3, 1))[0]}
        if rng.random() < answer_rate:
            answers["trust_confidence"] = rng.choices(range(1, 6), weights=(1, 3, 5, 4, 1))[0]
        if rng.random() < answer_rate:
            chosen = [v for v in LEVELS["agencies"] if rng.random() < 0.5]
            if chosen:
                answers["agencies"] = chosen
        if rng.random() < answer_rate:
            answers["involved"] = rng.random() < 0.7
        if text and rng.random() < answer_rate:
            answers["trust_actions"] = f"Listen {rng.randrange(1000)}."
        site = rng.choices(SITES, weights=(2, 1))[0]
        wave = rng.choices(WAVES, weights=(3, 2))[0]
        rows.append(Row(site, wave, answers))
    return rows


def load(client: TestClient, headers: Headers, rows: Iterable[Row], survey: str = "trust") -> int:
    """Store `rows` through the NDJSON import, all at once."""
    lines = [
        orjson.dumps({"site": r.site, "wave": r.wave, "submitted_at": AT, "answers": r.answers})
        + b"\n"
        for r in rows
    ]
    imported = client.post(
        f"/v1/surveys/{survey}/responses:import",
        content=b"".join(lines),
        headers={**headers, "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"imported": len(lines)}
    return len(lines)


def get(
    client: TestClient, headers: Headers, path: str, params: Params = (), survey: str = "trust"
) -> Json:
    response = client.get(
        f"/v1/surveys/{survey}/stats/{path}", params=list(params), headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: Json = response.json()
    return body


def get_k(
    client: TestClient,
    headers: Headers,
    path: str,
    params: Params = (),
    survey: str = "trust",
    k: int = 5,
) -> Json:
    """A live table as an evaluator asks for it suppressed, with `?min_cell=K` (§7.5)."""
    return get(client, headers, path, [*params, ("min_cell", str(k))], survey)


# --- coded text answers (§6) ---------------------------------------------------------

THEMES: dict[str, list[str]] = {
    "relationship": ["rapport", "time"],
    "child_centred": ["listening", "advocacy"],
}
CODEBOOK: Json = {
    "question": "trust_actions",
    "themes": [
        {
            "id": theme,
            "label": theme.capitalize(),
            "domain": "being" if theme == "relationship" else None,
            "categories": [{"id": c, "label": c.capitalize()} for c in categories],
        }
        for theme, categories in THEMES.items()
    ],
}
CATEGORIES = [c for cs in THEMES.values() for c in cs]
STATUSES = ("uncoded", "single", "agreed", "disputed", "resolved")


Outcomes = dict[int, tuple[str, frozenset[str] | None]]  # id(row) -> status, effective set


def coded_data_set(
    client: TestClient,
    admin: Headers,
    coders: list[Headers],
    survey: str,
    rng: random.Random,
    size: int,
) -> tuple[list[Row], Outcomes]:
    """`size` responses, their text answers coded by two evaluators in every status; returns
    the rows and each answer's status and effective set."""
    create_survey(client, admin, survey)
    load(client, admin, random_rows(rng, size, text=True), survey)
    put = client.put(f"/v1/surveys/{survey}/codebooks/trust_actions", json=CODEBOOK, headers=admin)
    assert put.status_code == 200, put.text
    listed = client.get(f"/v1/surveys/{survey}/responses", params={"limit": 1000}, headers=admin)
    assert listed.status_code == 200, listed.text
    rows: list[Row] = []
    outcome: Outcomes = {}
    for item in listed.json()["items"]:
        r = Row(item["site"], item["wave"], item["answers"])
        rows.append(r)
        if "trust_actions" not in r.answers:
            continue
        url = f"/v1/surveys/{survey}/responses/{item['id']}/codings/trust_actions"
        status = rng.choices(STATUSES, weights=(2, 4, 3, 2, 1))[0]
        first = frozenset(c for c in CATEGORIES if rng.random() < 0.4)
        second = first if status == "agreed" else first ^ {rng.choice(CATEGORIES)}
        effective: frozenset[str] | None = None
        if status != "uncoded":
            code = client.put(url, json={"categories": sorted(first)}, headers=coders[0])
            assert code.status_code == 200, code.text
            effective = first
        if status in ("agreed", "disputed", "resolved"):
            code = client.put(url, json={"categories": sorted(second)}, headers=coders[1])
            assert code.status_code == 200, code.text
            effective = first if status == "agreed" else None
        if status == "resolved":
            effective = frozenset(c for c in CATEGORIES if rng.random() < 0.5)
            agreed = client.put(
                f"{url}/consensus", json={"categories": sorted(effective)}, headers=coders[0]
            )
            assert agreed.status_code == 200, agreed.text
        outcome[id(r)] = (status, effective)
    return rows, outcome


# --- the statistics, recomputed -------------------------------------------------------


def spelled(value: Any) -> str:
    """A value as a `q.<question>` filter spells it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def in_scope(rows: Iterable[Row], params: Params) -> list[Row]:
    """The rows a request covers: any of its sites, any of its waves, and for each
    filtered question any of its values."""
    sites = {v for k, v in params if k == "site"}
    waves = {v for k, v in params if k == "wave"}
    filters: dict[str, set[str]] = {}
    for k, v in params:
        if k.startswith("q."):
            filters.setdefault(k[2:], set()).add(v)
    return [
        r
        for r in rows
        if (not sites or r.site in sites)
        and (not waves or r.wave in waves)
        and all(
            r.value(q) is not None and spelled(r.value(q)) in values
            for q, values in filters.items()
        )
    ]


def percent(count: int, base: int) -> float | None:
    """count / base x 100, half-up to one decimal, in integers."""
    return (2000 * count + base) // (2 * base) / 10 if base else None


def hundredths(numerator: int, denominator: int) -> float:
    """numerator / denominator half-up to two decimals (numerator >= 0)."""
    return (200 * numerator + denominator) // (2 * denominator) / 100


def answered(rows: Iterable[Row], question: str) -> list[Any]:
    """Every answer given: the chosen values of a multi-choice, flattened."""
    values: list[Any] = []
    for r in rows:
        value = r.value(question)
        if value is not None:
            values += value if question in MULTI else [value]
    return values


def table(rows: Sequence[Row], question: str, *, likert: bool = False) -> Json:
    """A §7.1 table (with §7.2's figures if `likert`), labels and flags aside."""
    values = answered(rows, question)
    n = sum(1 for r in rows if r.value(question) is not None)
    body: Json = {
        "n": n,
        "missing": len(rows) - n,
        "rows": [
            {
                "value": level,
                "count": values.count(level),
                "percent": percent(values.count(level), n),
            }
            for level in LEVELS[question]
        ],
    }
    if likert:
        body.update(likert_figures(values))
    return body


def likert_figures(values: Sequence[int]) -> Json:
    n = len(values)
    if not n:
        return dict.fromkeys(("mean", "median", "top2_percent", "bottom2_percent"))
    ordered = sorted(values)
    middle = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return {
        "mean": hundredths(sum(values), n),
        "median": float(middle),
        "top2_percent": percent(sum(1 for v in values if v >= 4), n),
        "bottom2_percent": percent(sum(1 for v in values if v <= 2), n),
    }


def groups_of(params: Params, by: str, sites: Sequence[str] = SITES) -> list[tuple[Any, Any]]:
    """(group value, what a row must hold) for each group of `by`, in definition order."""
    if by == "site":
        wanted = [v for k, v in params if k == "site"] or list(sites)
        return [(s, s) for s in SITES if s in wanted]
    if by == "wave":
        wanted = [v for k, v in params if k == "wave"] or list(WAVES)
        return [(w, w) for w in WAVES if w in wanted]
    return [(level, level) for level in LEVELS[by]]


def expected(
    rows: Sequence[Row],
    question: str,
    params: Params = (),
    *,
    likert: bool = False,
    sites: Sequence[str] = SITES,
) -> Json:
    """The body a request should get, labels and suppression flags aside (see `project`)."""
    scoped = in_scope([r for r in rows if r.site in sites], params)
    body = table(scoped, question, likert=likert)
    by = next((v for k, v in params if k == "by"), None)
    if by is not None:
        body["by"] = by
        body["groups"] = []
        for value, wanted in groups_of(params, by, sites):
            if by in ("site", "wave"):
                members = [r for r in scoped if getattr(r, by) == wanted]
            else:
                members = [r for r in scoped if r.value(by) == wanted]
            body["groups"].append({"value": value, **table(members, question, likert=likert)})
    return body


TABLE_FIELDS = ("n", "missing", "mean", "median", "top2_percent", "bottom2_percent")


def project(body: Json) -> Json:
    """A body reduced to what `expected` computes."""
    result: Json = {k: body[k] for k in TABLE_FIELDS if k in body}
    result["rows"] = [{k: r[k] for k in ("value", "count", "percent")} for r in body["rows"]]
    if body.get("by") is not None:
        result["by"] = body["by"]
        result["groups"] = [{"value": g["value"], **project(g)} for g in body["groups"]]
    return result
