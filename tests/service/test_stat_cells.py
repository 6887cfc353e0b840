"""The summary cells stay exactly what counting the stored rows afresh gives.

Statistics are read from `stat_cell`, kept up to date by every write path (submit,
import, erase, coding, consensus, codebook and survey edits). After each kind of change
the cells must equal a rebuild from the rows, and statistics read from them must equal
statistics counted from the rows (the fallback path of `tally`).
"""

import json
import random
from collections import Counter
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from schemas.responses import Response
from schemas.stats import StatCell, stat_row
from service.database import Database
from service.stats import cells
from service.stats.tally import Scope, _from_cells, _from_rows
from service.surveys import load_compiled, recount_stale_surveys
from tests.conftest import CODEBOOK_THEMES, MakeKey, bearer, survey_definition

SURVEY = "trust"
ROLES = ("police", "health", "other")


def snapshot(session: Session) -> Counter[tuple[str, ...]]:
    """The non-zero cells, their shards summed (a cell may fall back to zero and stay)."""
    found: Counter[tuple[str, ...]] = Counter()
    for cell in session.exec(select(StatCell)).all():
        if cell.n:
            key = (cell.question_id, cell.value, cell.by_question, cell.by_value)
            found[(cell.survey_id, *key, cell.site, cell.wave)] += cell.n
    return found


def narrow_rows(session: Session) -> list[tuple[Any, ...]]:
    """The narrow rows, without their commit-order number (a rebuild numbers them anew)."""
    kept = [c for c in stat_row.c if c.name != "seq"]
    return [tuple(row) for row in session.execute(select(*kept).order_by("response_pk"))]


def assert_cells_exact(database: Database) -> None:
    """The cells, and the narrow rows, equal a rebuild from the stored rows (done, then
    rolled back)."""
    with Session(database.write_engine) as session:
        kept, kept_rows = snapshot(session), narrow_rows(session)
        compiled = load_compiled(session, survey_id=SURVEY)
        cells.rebuild(session, compiled)
        rebuilt, rebuilt_rows = snapshot(session), narrow_rows(session)
        responses = session.execute(select(func.count()).select_from(Response)).scalar_one()
        session.rollback()
    assert kept == rebuilt
    assert kept_rows == rebuilt_rows
    assert len(kept_rows) == responses


def random_row(rng: random.Random, wave: str) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "role": rng.choice(ROLES),
        "trust_confidence": rng.randint(1, 5),
    }
    if rng.random() < 0.7:
        answers["agencies"] = rng.sample(["police", "school", "ngo"], rng.randint(1, 3))
    if rng.random() < 0.8:
        answers["involved"] = rng.random() < 0.5
    if rng.random() < 0.9:
        answers["trust_actions"] = rng.choice(["Listen.", "Be honest.", "Take time."])
    submitted = "2015-08-02T10:00:00Z" if wave == "midway" else "2016-08-02T10:00:00Z"
    site = rng.choice(["site-1", "site-2"])
    return {"site": site, "wave": wave, "submitted_at": submitted, "answers": answers}


def import_rows(client: TestClient, admin: dict[str, str], rows: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(row) + "\n" for row in rows)
    imported = client.post(
        f"/v1/surveys/{SURVEY}/responses:import",
        content=body.encode(),
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 200, imported.text


def response_ids(client: TestClient, admin: dict[str, str]) -> list[str]:
    page = client.get(f"/v1/surveys/{SURVEY}/responses?limit=1000", headers=admin)
    assert page.status_code == 200, page.text
    return [item["id"] for item in page.json()["items"]]


def both_paths_agree(database: Database, question_id: str, scope: Scope, by: str | None) -> None:
    with database.session(write=False) as session:
        compiled = load_compiled(session, survey_id=SURVEY)
        fast = _from_cells(session, SURVEY, question_id, scope, by)
        slow = _from_rows(session, compiled, question_id, scope, by)
    assert {k: (v.base, v.values) for k, v in fast.items() if v.base or v.values} == {
        k: (v.base, v.values) for k, v in slow.items() if v.base or v.values
    }


def test_every_write_path_keeps_the_cells_exact(
    client: TestClient, admin: dict[str, str], database: Database, make_key: MakeKey
) -> None:
    rng = random.Random(7)
    created = client.post("/v1/surveys", json=survey_definition(), headers=admin)
    assert created.status_code == 201, created.text

    import_rows(
        client, admin, [random_row(rng, rng.choice(["midway", "final"])) for _ in range(80)]
    )
    for _ in range(5):
        body = random_row(rng, "midway")
        del body["submitted_at"]
        posted = client.post(f"/v1/surveys/{SURVEY}/responses", json=body, headers=admin)
        assert posted.status_code == 201, posted.text
    assert_cells_exact(database)

    ids = response_ids(client, admin)
    for response_id in ids[:10]:
        erased = client.delete(f"/v1/surveys/{SURVEY}/responses/{response_id}", headers=admin)
        assert erased.status_code == 204
    assert_cells_exact(database)

    book = client.put(
        f"/v1/surveys/{SURVEY}/codebooks/trust_actions",
        json={"themes": CODEBOOK_THEMES},
        headers=admin,
    )
    assert book.status_code == 200, book.text
    coders = [bearer(make_key("coder", name=name)) for name in ("coder-a", "coder-b")]
    categories = [c["id"] for t in CODEBOOK_THEMES for c in t["categories"]]
    coded = []
    for response_id in ids[10:60]:
        path = f"/v1/surveys/{SURVEY}/responses/{response_id}/codings/trust_actions"
        chosen = rng.sample(categories, rng.randint(0, 2))
        for coder in coders:
            if rng.random() < 0.2:
                chosen = rng.sample(categories, 1)
            put = client.put(path, json={"categories": chosen}, headers=coder)
            if put.status_code == 422:  # a blank answer: not codable
                break
            assert put.status_code == 200, put.text
        else:
            coded.append(path)
    for path in coded[::4]:
        agreed = rng.sample(categories, 2)
        put = client.put(path + "/consensus", json={"categories": agreed}, headers=admin)
        assert put.status_code == 200, put.text
    assert_cells_exact(database)

    # a coder changes its mind, a consensus is withdrawn, a coded response is erased
    changed = client.put(coded[1], json={"categories": categories[:1]}, headers=coders[0])
    assert changed.status_code == 200
    assert client.delete(coded[0] + "/consensus", headers=admin).status_code == 204
    erased_id = coded[2].split("/")[5]
    assert (
        client.delete(f"/v1/surveys/{SURVEY}/responses/{erased_id}", headers=admin).status_code
        == 204
    )
    assert_cells_exact(database)

    # the codebook moves a category to another theme: theme counts follow
    moved = json.loads(json.dumps(CODEBOOK_THEMES))
    moved[1]["categories"].append(moved[0]["categories"].pop())
    book = client.put(
        f"/v1/surveys/{SURVEY}/codebooks/trust_actions", json={"themes": moved}, headers=admin
    )
    assert book.status_code == 200, book.text
    assert_cells_exact(database)

    scopes = [
        Scope(),
        Scope(sites=("site-1",)),
        Scope(waves=("final",), filters=(("role", ("police", "other")),)),
        Scope(filters=(("involved", ("true",)),)),
        Scope(filters=(("trust_confidence", ("4", "5")),)),
    ]
    for question in ("role", "agencies", "trust_confidence", "involved", "trust_actions"):
        for scope in scopes:
            for by in (None, "site", "wave"):
                both_paths_agree(database, question, scope, by)
        both_paths_agree(database, question, Scope(), "role")
        both_paths_agree(database, question, Scope(sites=("site-2",)), "trust_confidence")

    # a question changes type (choice to text): its answers and cells are derived anew
    questions = survey_definition()["questions"]
    questions[0] = {"id": "role", "type": "text", "text": "Your role, in words"}
    replaced = client.put(
        f"/v1/surveys/{SURVEY}", json=survey_definition(questions=questions), headers=admin
    )
    assert replaced.status_code == 200, replaced.text
    assert_cells_exact(database)
    with database.session(write=False) as session:
        assert not [c for c in snapshot(session) if c[3] == "role"]  # no longer a dimension


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_start_up_recounts_a_survey_stored_without_cells(
    client: TestClient, admin: dict[str, str], database: Database
) -> None:
    """Responses stored before migration 0003 (no cells yet) are counted at start-up."""
    rng = random.Random(3)
    assert client.post("/v1/surveys", json=survey_definition(), headers=admin).status_code == 201
    import_rows(client, admin, [random_row(rng, "midway") for _ in range(20)])
    with database.session() as session:
        before, rows = snapshot(session), narrow_rows(session)
        session.execute(StatCell.__table__.delete())  # type: ignore[attr-defined]
    with database.session() as session:
        assert recount_stale_surveys(session) == [SURVEY]
    with database.session() as session:
        assert snapshot(session) == before
        assert recount_stale_surveys(session) == []
        session.execute(stat_row.delete())  # narrow rows lost alone: found and rebuilt too
    with database.session() as session:
        assert recount_stale_surveys(session) == [SURVEY]
    with database.session() as session:
        assert narrow_rows(session) == rows
        assert recount_stale_surveys(session) == []
