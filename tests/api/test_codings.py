"""Coding answers (contract §6): codings per coder, blind double coding, consensus, the
statuses and effective sets, the coding queue, codebook edits that would orphan codings,
and erasure."""

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import MakeKey, assert_problem, bearer, submission, survey_definition

SURVEY = "/v1/surveys/trust"
CODEBOOK_URL = f"{SURVEY}/codebooks/trust_actions"
QUEUE_URL = f"{CODEBOOK_URL}/queue"
CODED_TABLES = ("coding", "coding_consensus", "coding_outcome", "effective_category")

Headers = dict[str, str]


def codebook(*, without: str | None = None) -> dict[str, Any]:
    categories = [
        {"id": "rapport", "label": "Building a good rapport"},
        {"id": "time", "label": "Spending time", "origin": "inductive"},
        {"id": "listening", "label": "Listening"},
        {"id": "advocacy", "label": "Advocacy"},
    ]
    return {
        "question": "trust_actions",
        "themes": [
            {
                "id": "relationship",
                "label": "Relationship-based practice",
                "domain": "being",
                "categories": [c for c in categories[:2] if c["id"] != without],
            },
            {
                "id": "child_centred",
                "label": "Child-centred practice",
                "categories": [c for c in categories[2:] if c["id"] != without],
            },
        ],
    }


@pytest.fixture
def coded_survey(client: TestClient, admin: Headers, survey: dict[str, Any]) -> None:
    put = client.put(CODEBOOK_URL, json=codebook(), headers=admin)
    assert put.status_code == 200, put.text


Answer = Callable[..., str]


@pytest.fixture
def answer(client: TestClient, admin: Headers, coded_survey: None) -> Answer:
    """answer(text="...", site="site-1") -> the new response's id."""

    def make(text: str | None = "Listen to the child.", site: str = "site-1") -> str:
        answers = {} if text is None else {"trust_actions": text}
        body = {**submission(**answers), "site": site}
        created = client.post(f"{SURVEY}/responses", json=body, headers=admin)
        assert created.status_code == 201, created.text
        response_id: str = created.json()["id"]
        return response_id

    return make


def codings_url(response_id: str, question: str = "trust_actions") -> str:
    return f"{SURVEY}/responses/{response_id}/codings/{question}"


def code(client: TestClient, who: Headers, response_id: str, *categories: str) -> Any:
    put = client.put(codings_url(response_id), json={"categories": list(categories)}, headers=who)
    assert put.status_code == 200, put.text
    return put.json()


def resolve(client: TestClient, who: Headers, response_id: str, *categories: str) -> Any:
    put = client.put(
        codings_url(response_id) + "/consensus", json={"categories": list(categories)}, headers=who
    )
    assert put.status_code == 200, put.text
    return put.json()


def view(client: TestClient, who: Headers, response_id: str) -> Any:
    got = client.get(codings_url(response_id), headers=who)
    assert got.status_code == 200, got.text
    return got.json()


def stored_outcome(db_url: str, response_id: str) -> tuple[Any, Any, list[str]]:
    """(status, effective, effective_category ids) as the database holds them."""
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            pk = conn.execute(
                text("SELECT pk FROM response WHERE id = :id"), {"id": response_id}
            ).scalar_one()
            row = conn.execute(
                text(
                    "SELECT status, effective IS NULL FROM coding_outcome"
                    " WHERE response_pk = :pk AND question_id = 'trust_actions'"
                ),
                {"pk": pk},
            ).first()
            effective = conn.execute(
                text(
                    "SELECT category_id FROM effective_category WHERE response_pk = :pk"
                    " AND question_id = 'trust_actions' ORDER BY category_id"
                ),
                {"pk": pk},
            ).scalars()
            categories = list(effective)
    finally:
        engine.dispose()
    if row is None:
        return None, None, categories
    return row[0], bool(row[1]), categories


@pytest.fixture
def coders(make_key: MakeKey) -> dict[str, Headers]:
    return {
        "ann": bearer(make_key("coder", name="ann")),
        "bob": bearer(make_key("coder", name="bob")),
        "eva": bearer(make_key("evaluator", name="eva")),
    }


# --- statuses and effective sets ---------------------------------------------------------


def test_every_status_transition_with_its_effective_set(
    client: TestClient, admin: Headers, coders: dict[str, Headers], answer: Answer, db_url: str
) -> None:
    rid = answer()
    ann, bob, eva = coders["ann"], coders["bob"], coders["eva"]

    assert view(client, admin, rid) == {
        "codings": [],
        "consensus": None,
        "effective": None,
        "status": "uncoded",
    }
    assert stored_outcome(db_url, rid) == (None, None, [])

    stored = code(client, ann, rid, "time", "rapport")
    assert stored["coder"] == "ann"
    assert stored["categories"] == ["rapport", "time"]
    body = view(client, admin, rid)
    assert (body["status"], body["effective"], body["consensus"]) == (
        "single",
        ["rapport", "time"],
        None,
    )
    assert stored_outcome(db_url, rid) == ("single", False, ["rapport", "time"])

    code(client, bob, rid, "rapport", "time")
    body = view(client, admin, rid)
    assert [c["coder"] for c in body["codings"]] == ["ann", "bob"]
    assert (body["status"], body["effective"]) == ("agreed", ["rapport", "time"])
    assert stored_outcome(db_url, rid) == ("agreed", False, ["rapport", "time"])

    code(client, bob, rid, "rapport")
    body = view(client, admin, rid)
    assert (body["status"], body["effective"]) == ("disputed", None)
    assert stored_outcome(db_url, rid) == ("disputed", True, [])

    resolved = resolve(client, eva, rid, "rapport", "listening")
    assert (resolved["status"], resolved["consensus"], resolved["effective"]) == (
        "resolved",
        ["listening", "rapport"],
        ["listening", "rapport"],
    )
    assert view(client, admin, rid) == resolved
    assert stored_outcome(db_url, rid) == ("resolved", False, ["listening", "rapport"])

    # a consensus outlives later codings
    code(client, ann, rid, "rapport")
    assert view(client, admin, rid)["status"] == "resolved"
    assert stored_outcome(db_url, rid) == ("resolved", False, ["listening", "rapport"])

    withdrawn = client.delete(codings_url(rid) + "/consensus", headers=eva)
    assert withdrawn.status_code == 204, withdrawn.text
    body = view(client, admin, rid)
    assert (body["status"], body["consensus"], body["effective"]) == ("agreed", None, ["rapport"])
    assert stored_outcome(db_url, rid) == ("agreed", False, ["rapport"])

    again = client.delete(codings_url(rid) + "/consensus", headers=eva)
    assert_problem(again, 404)


def test_a_consensus_without_codings_resolves_and_its_withdrawal_uncodes(
    client: TestClient, admin: Headers, answer: Answer, db_url: str
) -> None:
    rid = answer()
    body = resolve(client, admin, rid, "advocacy")
    assert body == {
        "codings": [],
        "consensus": ["advocacy"],
        "effective": ["advocacy"],
        "status": "resolved",
    }
    assert client.delete(codings_url(rid) + "/consensus", headers=admin).status_code == 204
    assert view(client, admin, rid)["status"] == "uncoded"
    assert stored_outcome(db_url, rid) == (None, None, [])


def test_an_empty_coding_is_codable_with_no_category(
    client: TestClient, coders: dict[str, Headers], admin: Headers, answer: Answer, db_url: str
) -> None:
    rid = answer()
    assert code(client, coders["ann"], rid)["categories"] == []
    body = view(client, admin, rid)
    assert (body["status"], body["effective"]) == ("single", [])
    assert stored_outcome(db_url, rid) == ("single", False, [])
    code(client, coders["bob"], rid)
    assert view(client, admin, rid)["status"] == "agreed"
    code(client, coders["bob"], rid, "time")
    assert view(client, admin, rid)["status"] == "disputed"
    resolve(client, admin, rid)
    body = view(client, admin, rid)
    assert (body["status"], body["consensus"], body["effective"]) == ("resolved", [], [])


def test_re_coding_replaces_the_callers_coding(
    client: TestClient, coders: dict[str, Headers], admin: Headers, answer: Answer
) -> None:
    rid = answer()
    first = code(client, coders["ann"], rid, "rapport")
    time.sleep(0.01)
    second = code(client, coders["ann"], rid, "listening", "advocacy")
    assert second["categories"] == ["advocacy", "listening"]
    assert second["coded_at"] > first["coded_at"]
    body = view(client, admin, rid)
    assert body["codings"] == [second]
    assert body["status"] == "single"


# --- blind double coding ------------------------------------------------------------------


def test_a_coder_sees_only_its_own_coding(
    client: TestClient, coders: dict[str, Headers], answer: Answer
) -> None:
    ann, bob, eva = coders["ann"], coders["bob"], coders["eva"]
    rid = answer()
    assert view(client, ann, rid) == {
        "codings": [],
        "consensus": None,
        "effective": None,
        "status": "uncoded",
    }
    mine = code(client, ann, rid, "rapport")
    code(client, bob, rid, "time")
    assert view(client, eva, rid)["status"] == "disputed"
    assert view(client, ann, rid) == {
        "codings": [mine],
        "consensus": None,
        "effective": ["rapport"],
        "status": "single",
    }
    resolve(client, eva, rid, "listening")
    seen_by_bob = view(client, bob, rid)
    assert [c["coder"] for c in seen_by_bob["codings"]] == ["bob"]
    assert (seen_by_bob["consensus"], seen_by_bob["effective"], seen_by_bob["status"]) == (
        None,
        ["time"],
        "single",
    )
    assert [c["coder"] for c in view(client, eva, rid)["codings"]] == ["ann", "bob"]


@pytest.fixture
def third_coder(coders: dict[str, Headers], make_key: MakeKey) -> dict[str, Headers]:
    coders["cid"] = bearer(make_key("coder", name="cid"))
    return coders


def test_a_coder_who_has_not_coded_sees_nothing_of_the_others(
    client: TestClient, third_coder: dict[str, Headers], answer: Answer
) -> None:
    rid = answer()
    code(client, third_coder["ann"], rid, "rapport")
    resolve(client, third_coder["eva"], rid, "time")
    assert view(client, third_coder["eva"], rid)["status"] == "resolved"
    assert view(client, third_coder["cid"], rid) == {
        "codings": [],
        "consensus": None,
        "effective": None,
        "status": "uncoded",
    }


# --- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"categories": ["rapport", "nonsense"]}, ["categories", 1]),
        ({"categories": ["rapport", "rapport"]}, ["categories"]),
        ({"categories": ["Not A Slug"]}, ["categories", 0]),
        ({"categories": "rapport"}, ["categories"]),
        ({"categories": [1]}, ["categories", 0]),
        ({}, ["categories"]),
        ({"categories": [], "extra": 1}, ["extra"]),
        ({"categories": [f"c{i}" for i in range(501)]}, ["categories"]),
    ],
)
@pytest.mark.parametrize("target", ["", "/consensus"])
def test_bad_codings_are_422_naming_the_field(
    client: TestClient,
    admin: Headers,
    answer: Answer,
    body: dict[str, Any],
    loc: list[str | int],
    target: str,
    db_url: str,
) -> None:
    rid = answer()
    response = client.put(codings_url(rid) + target, json=body, headers=admin)
    assert_problem(response, 422, loc)
    assert view(client, admin, rid)["status"] == "uncoded"


@pytest.mark.parametrize("target", ["", "/consensus"])
def test_a_blank_answer_cannot_be_coded(
    client: TestClient, admin: Headers, answer: Answer, target: str
) -> None:
    rid = answer(text=None)
    response = client.put(codings_url(rid) + target, json={"categories": []}, headers=admin)
    assert_problem(response, 422, ["answers", "trust_actions"])


@pytest.mark.parametrize("method", ["PUT", "GET", "PUT consensus", "DELETE consensus"])
def test_unknown_things_are_404(
    client: TestClient, admin: Headers, answer: Answer, method: str
) -> None:
    rid = answer()
    verb, _, suffix = method.partition(" ")
    suffix = "/consensus" if suffix else ""
    body: dict[str, list[str]] | None = {"categories": []} if verb == "PUT" else None
    for url in (
        codings_url("no-such-response") + suffix,
        codings_url(rid, "role") + suffix,  # not a text question
        codings_url(rid, "no_such_question") + suffix,
        f"/v1/surveys/nope/responses/{rid}/codings/trust_actions" + suffix,
    ):
        assert_problem(client.request(verb, url, json=body, headers=admin), 404)


def test_a_question_without_codebook_is_404(
    client: TestClient, admin: Headers, survey: dict[str, Any]
) -> None:
    created = client.post(
        f"{SURVEY}/responses", json=submission(trust_actions="Listen."), headers=admin
    )
    rid = created.json()["id"]
    assert_problem(client.put(codings_url(rid), json={"categories": []}, headers=admin), 404)
    assert_problem(client.get(codings_url(rid), headers=admin), 404)
    assert_problem(client.get(QUEUE_URL, headers=admin), 404)


def test_a_response_of_another_survey_is_404(
    client: TestClient, admin: Headers, answer: Answer
) -> None:
    other = client.post("/v1/surveys", json=survey_definition(id="other"), headers=admin)
    assert other.status_code == 201, other.text
    put = client.put("/v1/surveys/other/codebooks/trust_actions", json=codebook(), headers=admin)
    assert put.status_code == 200, put.text
    rid = answer()
    url = f"/v1/surveys/other/responses/{rid}/codings/trust_actions"
    assert_problem(client.put(url, json={"categories": []}, headers=admin), 404)
    assert_problem(client.get(url, headers=admin), 404)


def test_site_bound_keys_code_only_their_sites(
    client: TestClient, admin: Headers, make_key: MakeKey, answer: Answer
) -> None:
    site2_coder = bearer(make_key("coder", sites=["site-2"], name="s2"))
    site2_evaluator = bearer(make_key("evaluator", sites=["site-2"], name="e2"))
    foreign, own = answer(site="site-1"), answer(site="site-2")
    for who in (site2_coder, site2_evaluator):
        put = client.put(codings_url(foreign), json={"categories": []}, headers=who)
        assert_problem(put, 403)
        assert_problem(client.get(codings_url(foreign), headers=who), 403)
        assert client.get(codings_url(own), headers=who).status_code == 200
    assert_problem(
        client.put(
            codings_url(foreign) + "/consensus", json={"categories": []}, headers=site2_evaluator
        ),
        403,
    )
    assert code(client, site2_coder, own, "rapport")["coder"] == "s2"
    assert view(client, admin, foreign)["status"] == "uncoded"


def test_coders_may_not_set_consensus(
    client: TestClient, coders: dict[str, Headers], answer: Answer
) -> None:
    rid = answer()
    url = codings_url(rid) + "/consensus"
    assert_problem(client.put(url, json={"categories": []}, headers=coders["ann"]), 403)
    assert_problem(client.delete(url, headers=coders["ann"]), 403)


# --- the queue ---------------------------------------------------------------------------


def queue(client: TestClient, who: Headers, query: str = "") -> Any:
    got = client.get(QUEUE_URL + query, headers=who)
    assert got.status_code == 200, got.text
    return got.json()


def queue_ids(client: TestClient, who: Headers, query: str = "") -> list[str]:
    return [item["response_id"] for item in queue(client, who, query)["items"]]


def test_the_queue_lists_uncoded_non_blank_answers_oldest_first(
    client: TestClient, coders: dict[str, Headers], answer: Answer
) -> None:
    ann = coders["ann"]
    first = answer(text="  Listen.  ")
    answer(text=None)
    second = answer(text="Be there.", site="site-2")
    third = answer(text="Spend time.")
    body = queue(client, ann)
    assert body["items"] == [
        {"response_id": first, "site": "site-1", "wave": "midway", "text": "Listen."},
        {"response_id": second, "site": "site-2", "wave": "midway", "text": "Be there."},
        {"response_id": third, "site": "site-1", "wave": "midway", "text": "Spend time."},
    ]
    assert body["next_cursor"] is None
    code(client, ann, second, "time")
    assert queue_ids(client, ann) == [first, third]
    # another coder's queue is its own
    assert queue_ids(client, coders["bob"]) == [first, second, third]


def test_the_queue_pages_with_a_cursor(
    client: TestClient, coders: dict[str, Headers], answer: Answer
) -> None:
    ids = [answer(text=f"Answer {i}.") for i in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "?limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = queue(client, coders["ann"], query)
        seen += [item["response_id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 3
    # coding during paging does not disturb the order of what is left
    first_page = queue(client, coders["ann"], "?limit=2")
    code(client, coders["ann"], ids[2])
    rest = queue(client, coders["ann"], f"?limit=2&cursor={first_page['next_cursor']}")
    assert [i["response_id"] for i in rest["items"]] == ids[3:5]


@pytest.mark.parametrize(
    "query", ["?limit=0", "?limit=1001", "?cursor=%%%", "?cursor=bnVsbA", "?coded_by_other=maybe"]
)
def test_bad_queue_queries_are_422(
    client: TestClient, coders: dict[str, Headers], answer: Answer, query: str
) -> None:
    answer()
    assert_problem(client.get(QUEUE_URL + query, headers=coders["ann"]), 422)


def test_coded_by_other_lists_what_another_coder_coded(
    client: TestClient, coders: dict[str, Headers], answer: Answer
) -> None:
    ann, bob = coders["ann"], coders["bob"]
    ids = [answer(text=f"Answer {i}.") for i in range(4)]
    code(client, ann, ids[1], "rapport")
    code(client, ann, ids[3], "time")
    code(client, bob, ids[3], "time")
    assert queue_ids(client, bob, "?coded_by_other=true") == [ids[1]]
    assert queue_ids(client, ann, "?coded_by_other=true") == []  # bob coded only what ann did
    code(client, bob, ids[0])
    assert queue_ids(client, ann, "?coded_by_other=true") == [ids[0]]
    assert queue_ids(client, bob, "?coded_by_other=false") == [ids[1], ids[2]]


def test_the_queue_keeps_to_the_keys_sites(
    client: TestClient, make_key: MakeKey, answer: Answer
) -> None:
    site2 = bearer(make_key("coder", sites=["site-2"], name="s2"))
    answer(site="site-1")
    own = answer(site="site-2")
    assert queue_ids(client, site2) == [own]


# --- codebook edits ------------------------------------------------------------------------


def test_removing_a_category_in_use_is_409_naming_it(
    client: TestClient, admin: Headers, coders: dict[str, Headers], answer: Answer
) -> None:
    rid, other = answer(), answer()
    code(client, coders["ann"], rid, "time", "rapport")
    resolve(client, admin, other, "advocacy")

    for held in ("time", "rapport", "advocacy"):
        refused = client.put(CODEBOOK_URL, json=codebook(without=held), headers=admin)
        body = assert_problem(refused, 409)
        assert held in body["detail"]
    assert client.get(CODEBOOK_URL, headers=admin).json()["version"] == 1

    unused = client.put(CODEBOOK_URL, json=codebook(without="listening"), headers=admin)
    assert unused.status_code == 200, unused.text

    moved = codebook()
    moved["themes"][0]["categories"][0]["label"] = "Rapport"
    moved["themes"][1]["categories"].append(moved["themes"][0]["categories"].pop(1))
    relabelled = client.put(CODEBOOK_URL, json=moved, headers=admin)
    assert relabelled.status_code == 200, relabelled.text

    # once no coding holds it, it may go
    code(client, coders["ann"], rid, "rapport")
    assert client.put(CODEBOOK_URL, json=codebook(without="time"), headers=admin).status_code == 200
    # and a withdrawn consensus frees its categories too
    assert client.delete(codings_url(other) + "/consensus", headers=admin).status_code == 204
    assert (
        client.put(CODEBOOK_URL, json=codebook(without="advocacy"), headers=admin).status_code
        == 200
    )


def test_a_409_names_every_category_in_use(
    client: TestClient, admin: Headers, answer: Answer
) -> None:
    code(client, admin, answer(), "time", "rapport")
    slim = codebook()
    slim["themes"][0]["categories"] = []
    body = assert_problem(client.put(CODEBOOK_URL, json=slim, headers=admin), 409)
    assert "rapport" in body["detail"]
    assert "time" in body["detail"]


# --- erasure -------------------------------------------------------------------------------


def _rows_of(db_url: str, response_id: str) -> dict[str, int]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            pk = conn.execute(
                text("SELECT pk FROM response WHERE id = :id"), {"id": response_id}
            ).scalar()
            counts = {
                table: conn.execute(
                    text(f"SELECT count(*) FROM {table} WHERE response_pk = :pk"),
                    {"pk": pk},
                ).scalar_one()
                for table in CODED_TABLES
            }
            counts["coding_category"] = conn.execute(
                text("SELECT count(*) FROM coding_category")
            ).scalar_one()
            counts["response"] = int(pk is not None)
    finally:
        engine.dispose()
    return counts


def test_erasing_a_response_erases_its_codings_consensus_and_outcome(
    client: TestClient, admin: Headers, coders: dict[str, Headers], answer: Answer, db_url: str
) -> None:
    doomed, kept = answer(), answer()
    for rid in (doomed, kept):
        code(client, coders["ann"], rid, "rapport", "time")
        code(client, coders["bob"], rid, "rapport")
        resolve(client, admin, rid, "rapport")
    before = _rows_of(db_url, doomed)
    assert before == {
        "coding": 2,
        "coding_consensus": 1,
        "coding_outcome": 1,
        "effective_category": 1,
        "coding_category": 8,
        "response": 1,
    }
    erased = client.delete(f"{SURVEY}/responses/{doomed}", headers=admin)
    assert erased.status_code == 204, erased.text
    assert _rows_of(db_url, doomed) == {
        "coding": 0,
        "coding_consensus": 0,
        "coding_outcome": 0,
        "effective_category": 0,
        "coding_category": 4,
        "response": 0,
    }
    assert _rows_of(db_url, kept)["coding"] == 2
    assert view(client, admin, kept)["status"] == "resolved"
    assert_problem(client.get(codings_url(doomed), headers=admin), 404)
    # the categories it held are free again once no other answer holds them
    code(client, coders["ann"], kept, "rapport")
    code(client, coders["bob"], kept, "rapport")
    assert client.put(CODEBOOK_URL, json=codebook(without="time"), headers=admin).status_code == 200
