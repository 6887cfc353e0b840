"""The narrow table (`service/stats/narrow.py`) and each process's in-memory copy of it
(`service/stats/columns.py`) count exactly what the answer rows count.

Every statistic with two or more filters, or a filter and a question group, is read from
the copy (or one scan of the narrow rows where the copy declines); here both are held to
the rows path (joins over the stored answer rows, `tally._from_rows`) over many random
scopes, on both engines. The copy is loaded once and then only catches up: after live
submissions, erasures, codings, consensus, a codebook that moves categories between
themes and a definition change that moves the codes. The concurrent case (two server
processes, each with its own copy) is tests/server/test_stat_cells_concurrency.py.
"""

import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from schemas.keys import Role
from schemas.surveys import SurveyDefinition
from service.database import Database
from service.erasure import erase_response
from service.keys import Principal
from service.stats import cells, columns, narrow
from service.stats.tally import (
    TOP,
    Counts,
    Scope,
    _from_narrow,
    _from_narrow_sql,
    _from_rows,
    tally,
    tally_with_groups,
)
from service.surveys import load_compiled
from service.validation import compile_survey
from tests.conftest import CODEBOOK_THEMES, MakeKey, bearer, survey_definition
from tests.service.test_stat_cells import (
    SURVEY,
    assert_cells_exact,
    import_rows,
    random_row,
    response_ids,
)

QUESTIONS = ("role", "agencies", "trust_confidence", "involved", "trust_actions")
VALUES = {
    "role": ("police", "health", "other"),
    "trust_confidence": ("1", "2", "3", "4", "5"),
    "involved": ("true", "false"),
}
BYS = (None, "site", "wave", "role", "trust_confidence", "involved")


def random_scope(rng: random.Random) -> Scope:
    filtered = rng.sample(sorted(VALUES), rng.randint(1, 3))
    return Scope(
        sites=tuple(rng.sample(["site-1", "site-2"], rng.randint(1, 2)))
        if rng.random() < 0.4
        else None,
        waves=tuple(rng.sample(["midway", "final"], rng.randint(1, 2)))
        if rng.random() < 0.4
        else None,
        filters=tuple(
            (q, tuple(rng.sample(VALUES[q], rng.randint(1, len(VALUES[q]) - 1)))) for q in filtered
        ),
    )


def _nonzero(found: dict[str, Counts]) -> dict[str, tuple[int, dict[str, int]]]:
    return {
        k: (v.base, {x: n for x, n in v.values.items() if n})
        for k, v in found.items()
        if v.base or any(v.values.values())
    }


def assert_random_scopes_agree(database: Database, rng: random.Random, times: int) -> int:
    """Held over `times` random (question, scope, by); returns how many counted anyone."""
    counted = 0
    with database.session(write=False) as session:
        compiled = load_compiled(session, survey_id=SURVEY)
        for _ in range(times):
            question, scope, by = rng.choice(QUESTIONS), random_scope(rng), rng.choice(BYS)
            copied = columns.count(
                session,
                compiled,
                question,
                sites=scope.sites,
                waves=scope.waves,
                filters=scope.filters,
                by=by,
            )
            assert copied is not None  # the copy answers every one of these shapes
            fast = _nonzero({k: Counts(base=b, values=v) for k, (b, v) in copied.items()})
            slow = _nonzero(_from_rows(session, compiled, question, scope, by))
            assert fast == slow, (question, scope, by)
            sql = _nonzero(_from_narrow_sql(session, compiled, question, scope, by))
            assert sql == slow, (question, scope, by)
            assert _nonzero(_from_narrow(session, compiled, question, scope, by)) == slow
            assert _nonzero(tally(session, compiled, question_id=question, scope=scope, by=by))
            whole, grouped = tally_with_groups(
                session, compiled, question_id=question, scope=scope, by=by
            )
            everyone = _from_rows(session, compiled, question, scope, None)
            assert _nonzero({TOP: whole}) == _nonzero(everyone)
            assert _nonzero(grouped) == (slow if by is not None else {})
            counted += bool(fast)
    return counted


def test_the_narrow_rows_count_what_the_answer_rows_count(
    client: TestClient, admin: dict[str, str], database: Database, make_key: MakeKey
) -> None:
    rng = random.Random(15)
    created = client.post("/v1/surveys", json=survey_definition(), headers=admin)
    assert created.status_code == 201, created.text
    import_rows(
        client, admin, [random_row(rng, rng.choice(["midway", "final"])) for _ in range(150)]
    )
    book = client.put(
        f"/v1/surveys/{SURVEY}/codebooks/trust_actions",
        json={"themes": CODEBOOK_THEMES},
        headers=admin,
    )
    assert book.status_code == 200, book.text
    assert assert_random_scopes_agree(database, rng, 60) > 40  # the copy loads here

    for _ in range(6):
        body = random_row(rng, "midway")
        del body["submitted_at"]
        posted = client.post(f"/v1/surveys/{SURVEY}/responses", json=body, headers=admin)
        assert posted.status_code == 201, posted.text
    assert assert_random_scopes_agree(database, rng, 40) > 25  # caught up: new rows
    ids = response_ids(client, admin)
    for response_id in ids[:12]:
        erased = client.delete(f"/v1/surveys/{SURVEY}/responses/{response_id}", headers=admin)
        assert erased.status_code == 204
    assert assert_random_scopes_agree(database, rng, 40) > 25  # caught up: erasures

    coders = [bearer(make_key("coder", name=name)) for name in ("coder-a", "coder-b")]
    categories = [c["id"] for t in CODEBOOK_THEMES for c in t["categories"]]
    coded: list[str] = []
    for response_id in ids[12:90]:
        path = f"/v1/surveys/{SURVEY}/responses/{response_id}/codings/trust_actions"
        for coder in coders[: rng.randint(1, 2)]:
            put = client.put(
                path, json={"categories": rng.sample(categories, rng.randint(0, 2))}, headers=coder
            )
            if put.status_code == 422:  # a blank answer: not codable
                break
            assert put.status_code == 200, put.text
            if path not in coded:
                coded.append(path)
    assert_cells_exact(database)
    assert assert_random_scopes_agree(database, rng, 120) > 80  # caught up: codings

    evaluator = bearer(make_key("evaluator"))
    for path in coded[::3]:  # a consensus settles (or re-settles) the answer
        agreed = client.put(
            f"{path}/consensus", json={"categories": rng.sample(categories, 2)}, headers=evaluator
        )
        assert agreed.status_code == 200, agreed.text
    assert assert_random_scopes_agree(database, rng, 60) > 40  # caught up: consensus

    # the codebook moves a category to the other theme: theme counts follow at once
    moved = [dict(t, categories=list(t["categories"])) for t in CODEBOOK_THEMES]
    moved[1]["categories"].append(moved[0]["categories"].pop())
    book = client.put(
        f"/v1/surveys/{SURVEY}/codebooks/trust_actions", json={"themes": moved}, headers=admin
    )
    assert book.status_code == 200, book.text
    assert assert_random_scopes_agree(database, rng, 60) > 40

    # the definition moves the codes (options reordered, a site added): rows follow
    definition = survey_definition()
    role = next(q for q in definition["questions"] if q["id"] == "role")
    role["options"].reverse()
    definition["sites"].insert(0, {"id": "site-0", "name": "Site 0"})
    replaced = client.put(f"/v1/surveys/{SURVEY}", json=definition, headers=admin)
    assert replaced.status_code == 200, replaced.text
    assert_cells_exact(database)
    assert assert_random_scopes_agree(database, rng, 100) > 60

    # a definition change that keeps the codes (a new title: no rebuild), then more
    # erasures and submissions: the copy keeps catching up
    definition["title"] = "Trust, renamed"
    replaced = client.put(f"/v1/surveys/{SURVEY}", json=definition, headers=admin)
    assert replaced.status_code == 200, replaced.text
    for response_id in ids[90:100]:
        erased = client.delete(f"/v1/surveys/{SURVEY}/responses/{response_id}", headers=admin)
        assert erased.status_code == 204
    for _ in range(4):
        body = random_row(rng, "midway")
        del body["submitted_at"]
        posted = client.post(f"/v1/surveys/{SURVEY}/responses", json=body, headers=admin)
        assert posted.status_code == 201, posted.text
    assert_cells_exact(database)
    assert assert_random_scopes_agree(database, rng, 100) > 60

    # rows derived afresh under the same codes (start-up's recount does this): the copy
    # sees the survey's 'rebuilt' mark, drops what it held and takes the new rows
    with database.session() as session:
        cells.rebuild(session, load_compiled(session, survey_id=SURVEY))
    assert assert_random_scopes_agree(database, rng, 60) > 40


def test_two_filters_over_http_count_the_submitted_answers(
    client: TestClient, admin: dict[str, str]
) -> None:
    rng = random.Random(4)
    assert client.post("/v1/surveys", json=survey_definition(), headers=admin).status_code == 201
    rows = [random_row(rng, "midway") for _ in range(120)]
    import_rows(client, admin, rows)
    got = client.get(
        f"/v1/surveys/{SURVEY}/stats/composition/agencies",
        params=[
            ("q.role", "police"),
            ("q.trust_confidence", "4"),
            ("q.trust_confidence", "5"),
            ("by", "involved"),
        ],
        headers=admin,
    )
    assert got.status_code == 200, got.text
    body = got.json()

    def chose(answers: dict[str, Any]) -> bool:
        return answers["role"] == "police" and answers["trust_confidence"] in (4, 5)

    scoped = [r["answers"] for r in rows if chose(r["answers"])]
    assert body["n"] + body["missing"] == len(scoped)
    assert body["n"] == sum(1 for a in scoped if a.get("agencies"))
    for group in body["groups"]:
        here = [a for a in scoped if a.get("involved") is group["value"]]
        assert {r["value"]: r["count"] for r in group["rows"]} == {
            option: sum(1 for a in here if option in a.get("agencies", []))
            for option in ("police", "school", "ngo")
        }


def test_questions_beyond_the_slots_are_counted_from_the_answer_rows() -> None:
    definition = survey_definition()
    definition["questions"] += [
        {"id": f"extra-{i}", "type": "boolean", "text": "More?"} for i in range(40)
    ]
    compiled = compile_survey(SurveyDefinition.model_validate(definition), 1)
    assert narrow.covers(compiled, ["role", "trust_confidence", "extra-10"])
    assert not narrow.covers(compiled, ["role", "extra-39"])


def test_an_erasure_during_a_rebuild_leaves_no_row_behind(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    """PostgreSQL: a rebuild of the survey's narrow rows (a definition change that moves
    codes) and an erasure at once. The rebuild's INSERT ... SELECT could re-add the row of
    the response being erased, after the erasure's DELETE had looked; the two take turns
    on the survey row instead (`narrow.hold`), so the erased response keeps no row."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite runs one writer at a time")
    rng = random.Random(8)
    assert client.post("/v1/surveys", json=survey_definition(), headers=admin).status_code == 201
    import_rows(client, admin, [random_row(rng, "midway") for _ in range(20)])
    victim = response_ids(client, admin)[0]
    principal = Principal(key_id=0, name="test", role=Role.admin, sites=None)
    with database.session() as rebuilding:
        narrow.apply(
            rebuilding, load_compiled(rebuilding, survey_id=SURVEY), sign=1, response_pks=None
        )

        def erase() -> None:
            with database.session() as session:
                erase_response(session, principal=principal, survey_id=SURVEY, response_id=victim)

        with ThreadPoolExecutor(1) as pool:
            erased = pool.submit(erase)
            waiting = text(
                "SELECT COUNT(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            for _ in range(200):  # until the erasure waits for the rebuild's locks
                with database.engine.connect() as conn:
                    if conn.execute(waiting).scalar_one():
                        break
                time.sleep(0.05)
            else:
                raise AssertionError("the erasure never waited for the rebuild")
            rebuilding.commit()
            erased.result()
    assert_cells_exact(database)  # the narrow rows equal a rebuild: none for the victim
    assert len(response_ids(client, admin)) == 19


def test_a_large_studys_copy_loads_in_a_thread_while_sql_answers(
    client: TestClient,
    admin: dict[str, str],
    database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above `BACKGROUND_LOAD` responses a first load (15-50 s at a million) must not hold
    up the request that asks first: it is answered from SQL, exactly, and the copy
    answers once a thread has loaded it."""
    monkeypatch.setattr(columns, "BACKGROUND_LOAD", 20)
    rng = random.Random(7)
    assert client.post("/v1/surveys", json=survey_definition(), headers=admin).status_code == 201
    rows = [random_row(rng, rng.choice(["midway", "final"])) for _ in range(150)]
    import_rows(client, admin, rows)
    columns.forget_all()
    scope = Scope(sites=None, waves=None, filters=(("involved", ("true",)),))

    def from_copy() -> dict[str, tuple[int, dict[str, int]]] | None:
        with database.session(write=False) as session:
            compiled = load_compiled(session, survey_id=SURVEY)
            return columns.count(
                session, compiled, "role", sites=None, waves=None, filters=scope.filters, by="site"
            )

    assert from_copy() is None  # the load has only begun, behind the request
    with database.session(write=False) as session:
        compiled = load_compiled(session, survey_id=SURVEY)
        exact = _nonzero(_from_rows(session, compiled, "role", scope, "site"))
        answered = tally_with_groups(session, compiled, question_id="role", scope=scope, by="site")
        assert _nonzero(answered[1]) == exact  # answered meanwhile (SQL or the copy)
    deadline = time.monotonic() + 30
    copied = from_copy()
    while copied is None and time.monotonic() < deadline:
        time.sleep(0.05)
        copied = from_copy()
    assert copied is not None, "the copy did not load within 30 s"
    assert _nonzero({k: Counts(base=b, values=v) for k, (b, v) in copied.items()}) == exact
    assert assert_random_scopes_agree(database, rng, 30) > 10
