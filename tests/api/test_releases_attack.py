"""The attacker of `release_attack` against releases published through HTTP: random
data sets with small groups, two releases with overlapping tables (filters, `by`, site
scopes), new submissions and an erasure between them. No suppressed count may be
worked out exactly, and protection must not be bought by suppressing everything."""

import random
from typing import Any

from fastapi.testclient import TestClient

from tests.api.release_attack import Person, attack
from tests.api.stats_support import (
    Headers,
    Json,
    Row,
    coded_data_set,
    create_survey,
    load,
    random_rows,
)
from tests.conftest import MakeKey, bearer

K = 5


def _spec(kind: str, question: str, **fields: Any) -> Json:
    return {"kind": kind, "question": question, **fields}


POOL: list[Json] = [
    _spec("composition", "role"),
    _spec("composition", "role", by="site"),
    _spec("composition", "role", by="wave"),
    _spec("composition", "role", q={"involved": [True]}),
    _spec("composition", "role", site=["site-1"]),
    _spec("composition", "role", site=["site-1"], q={"involved": [False]}),
    _spec("composition", "role", by="trust_confidence", site=["site-2"]),
    _spec("likert", "trust_confidence", by="role"),
    _spec("likert", "trust_confidence", site=["site-2"]),
    _spec("likert", "trust_confidence", q={"role": ["police"]}),
    _spec("likert", "trust_confidence", by="involved", site=["site-1"]),
    _spec("composition", "involved", by="role"),
    _spec("composition", "involved", wave=["midway"]),
    _spec("composition", "agencies", by="site"),
    _spec("composition", "agencies", q={"role": ["health", "other"]}),
]


def publish(
    client: TestClient, headers: Headers, release_id: str, specs: list[Json], survey: str = "trust"
) -> Json:
    tables = [{"id": f"t{i}", **spec} for i, spec in enumerate(specs)]
    body = {"id": release_id, "title": release_id, "tables": tables}
    created = client.post(f"/v1/surveys/{survey}/releases", json=body, headers=headers)
    assert created.status_code == 201, created.text
    result: Json = created.json()
    assert result["audit"]["withheld_tables"] == [], result["audit"]
    return result


def stored_ids(client: TestClient, admin: Headers, survey: str = "trust") -> list[str]:
    """The response ids, oldest first (an import stores its rows in order)."""
    found: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"/v1/surveys/{survey}/responses", params=params, headers=admin).json()
        found += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def person(row: Row, *present: str) -> Person:
    return Person(row.site, row.wave, dict(row.answers), set(present))


SEEDS = range(8)


def test_no_suppressed_count_is_worked_out_across_two_releases(
    client: TestClient, admin: Headers
) -> None:
    large = large_published = 0
    for seed in SEEDS:
        found = two_releases(client, admin, random.Random(seed), f"s{seed}")
        assert found.leaks == [], (seed, found.leaks)
        large += found.large
        large_published += found.large_published
    # protection is not bought by suppressing everything: most cells of K or more stay
    assert large_published > 0.5 * large, (large_published, large)


def two_releases(client: TestClient, admin: Headers, rng: random.Random, name: str) -> Any:
    """Release 1 over a fresh data set; new rows and an erasure; release 2, with three
    of release 1's tables and four others; the attack on both."""
    create_survey(client, admin, name)
    first = random_rows(rng, rng.randint(60, 160))
    load(client, admin, first, survey=name)
    people = [person(r, f"{name}-1", f"{name}-2") for r in first]
    specs_1 = rng.sample(POOL, 6)
    r1 = publish(client, admin, f"{name}-1", specs_1, name)
    later = random_rows(rng, rng.randint(1, 8))
    load(client, admin, later, survey=name)
    people += [person(r, f"{name}-2") for r in later]
    ids = stored_ids(client, admin, name)
    gone = rng.randrange(len(first))
    erased = client.delete(f"/v1/surveys/{name}/responses/{ids[gone]}", headers=admin)
    assert erased.status_code == 204
    people[gone].present = {f"{name}-1"}
    kept = rng.sample(specs_1, 3)
    specs_2 = kept + rng.sample([s for s in POOL if s not in kept], 4)
    r2 = publish(client, admin, f"{name}-2", specs_2, name)
    assert r2["n_responses"] == len(first) + len(later) - 1
    return attack([r1, r2], people, K)


def test_the_same_table_before_and_after_one_submission(client: TestClient, admin: Headers) -> None:
    """The second way of the issue: read a table, one response arrives, read it again."""
    create_survey(client, admin)
    rows = (
        [Row("site-1", "midway", {"role": "police", "trust_confidence": 4})] * 12
        + [Row("site-1", "midway", {"role": "health", "trust_confidence": 3})] * 9
        + [Row("site-1", "midway", {"role": "health", "trust_confidence": 2})] * 6
    )
    load(client, admin, rows)
    specs = [_spec("likert", "trust_confidence", by="role")]
    r1 = publish(client, admin, "r1", specs)
    newcomer = Row("site-1", "midway", {"role": "health", "trust_confidence": 3})
    load(client, admin, [newcomer])
    r2 = publish(client, admin, "r2", specs)
    people = [person(r, "r1", "r2") for r in rows] + [person(newcomer, "r2")]
    found = attack([r1, r2], people, K)
    assert found.leaks == []
    # every cell is 5 or more, but 9 then 10 would tell the newcomer's rating: hidden
    health = {g["value"]: g for g in r2["tables"][0]["groups"]}["health"]
    before = {g["value"]: g for g in r1["tables"][0]["groups"]}["health"]
    assert [r["count"] for r in before["rows"]] == [0, 6, 9, 0, 0]
    assert health["rows"][2]["count"] is None


THEME_POOL: list[Json] = [
    _spec("themes", "trust_actions"),
    _spec("themes", "trust_actions", by="site"),
    _spec("themes", "trust_actions", by="role"),
    _spec("themes", "trust_actions", site=["site-1"]),
    _spec("themes", "trust_actions", q={"role": ["police"]}),
    _spec("themes", "trust_actions", by="wave", q={"involved": [True]}),
    _spec("composition", "role", by="site"),
    _spec("likert", "trust_confidence", q={"role": ["health", "other"]}),
]
THEME_SEEDS = range(5)


def test_no_suppressed_theme_count_is_worked_out_across_two_releases(
    client: TestClient, admin: Headers, make_key: MakeKey
) -> None:
    """Theme tables in the attack: category counts, themes' respondents, the n_* counts
    and mentions, beside composition and likert tables, over two releases with new
    (uncoded) answers and an erasure between them."""
    coders = [bearer(make_key("evaluator")), bearer(make_key("evaluator"))]
    large = large_published = 0
    for seed in THEME_SEEDS:
        rng = random.Random(1000 + seed)
        name = f"t{seed}"
        first, outcomes = coded_data_set(client, admin, coders, name, rng, rng.randint(60, 140))
        people = [person(r, f"{name}-1", f"{name}-2") for r in first]
        for p, r in zip(people, first, strict=True):
            if id(r) in outcomes:
                p.codings["trust_actions"] = outcomes[id(r)]
        specs_1 = rng.sample(THEME_POOL, 4)
        r1 = publish(client, admin, f"{name}-1", specs_1, name)
        later = random_rows(rng, rng.randint(1, 6), text=True)
        load(client, admin, later, survey=name)
        people += [person(r, f"{name}-2") for r in later]
        ids = stored_ids(client, admin, name)
        gone = rng.randrange(len(first))
        erased = client.delete(f"/v1/surveys/{name}/responses/{ids[gone]}", headers=admin)
        assert erased.status_code == 204
        people[gone].present = {f"{name}-1"}
        kept = rng.sample(specs_1, 2)
        specs_2 = kept + rng.sample([s for s in THEME_POOL if s not in kept], 3)
        r2 = publish(client, admin, f"{name}-2", specs_2, name)
        found = attack([r1, r2], people, K)
        assert found.leaks == [], (seed, found.leaks)
        large += found.large
        large_published += found.large_published
        assert any(t["kind"] == "themes" for t in r1["tables"] + r2["tables"])
    assert large_published > 0.5 * large, (large_published, large)
