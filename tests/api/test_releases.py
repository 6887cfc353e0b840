"""Releases (contract §7.6) through HTTP: publication, frozen bodies, reading (JSON,
CSV), listing, withdrawal, who sees which release, and every refusal."""

import csv
import io
import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.database import Database
from service.releases import audit
from service.settings import Settings
from tests.api.stats_support import Headers, Json, create_survey, load, row
from tests.conftest import MakeKey, assert_problem, bearer

RELEASES = "/v1/surveys/trust/releases"


def roles(police: int, health: int, other: int, site: str = "site-1") -> list[Any]:
    return (
        [row(site=site, role="police", trust_confidence=4)] * police
        + [row(site=site, role="health", trust_confidence=2)] * health
        + [row(site=site, role="other", trust_confidence=5)] * other
    )


@pytest.fixture
def evaluator(client: TestClient, admin: Headers, make_key: MakeKey) -> Headers:
    create_survey(client, admin)
    headers = bearer(make_key("evaluator"))
    load(client, headers, roles(20, 12, 3) + roles(9, 8, 7, site="site-2"))
    return headers


def release(release_id: str = "midway-2015", **changes: Any) -> Json:
    body: Json = {
        "id": release_id,
        "title": "Mid-stage survey, all sites",
        "tables": [
            {"id": "roles", "kind": "composition", "question": "role", "by": "site"},
            {
                "id": "confidence",
                "kind": "likert",
                "question": "trust_confidence",
                "by": "role",
                "wave": ["midway"],
            },
        ],
    }
    body.update(changes)
    return body


def publish(client: TestClient, headers: Headers, body: Json) -> Json:
    created = client.post(RELEASES, json=body, headers=headers)
    assert created.status_code == 201, created.text
    result: Json = created.json()
    return result


def test_a_release_is_published_suppressed_and_frozen(
    client: TestClient, evaluator: Headers, admin: Headers, make_key: MakeKey
) -> None:
    created = publish(client, evaluator, release())
    assert created["id"] == "midway-2015"
    assert (created["min_cell"], created["n_responses"]) == (5, 59)
    assert created["audit"]["variables"] > 0
    roles_table, confidence = created["tables"]
    assert {k: roles_table[k] for k in ("id", "kind", "question", "by", "site", "wave", "q")} == {
        "id": "roles",
        "kind": "composition",
        "question": "role",
        "by": "site",
        "site": None,
        "wave": None,
        "q": None,
    }
    assert roles_table["n"] == 59
    # site-1's 3 "other" is below 5: hidden with the next smallest of its line
    site_1 = roles_table["groups"][0]
    assert site_1["value"] == "site-1"
    assert site_1["rows"][2] == {
        "value": "other",
        "label": "Other",
        "count": None,
        "percent": None,
        "suppressed": True,
    }
    assert sum(r["count"] is None for r in site_1["rows"]) >= 2
    assert confidence["wave"] == ["midway"]
    assert all(r["count"] in (None, 0) or r["count"] >= 5 for r in confidence["rows"])

    reader = bearer(make_key("reader"))
    stored = client.get(f"{RELEASES}/midway-2015", headers=reader)
    assert stored.status_code == 200, stored.text
    frozen = stored.json()
    assert "audit" not in frozen or frozen["audit"] is None
    assert frozen["tables"] == created["tables"]
    # later submissions and erasures count in later releases only
    load(client, evaluator, roles(30, 30, 30))
    listed = client.get("/v1/surveys/trust/responses", headers=admin).json()["items"]
    erased = client.delete(f"/v1/surveys/trust/responses/{listed[0]['id']}", headers=admin)
    assert erased.status_code == 204
    assert client.get(f"{RELEASES}/midway-2015", headers=reader).json() == frozen
    one = client.get(f"{RELEASES}/midway-2015/tables/roles", headers=reader)
    assert one.status_code == 200
    assert one.json() == created["tables"][0]
    later = publish(client, evaluator, release("final-2016"))
    assert later["n_responses"] == 59 + 90 - 1


def test_a_suppressed_row_nulls_the_likert_figures(client: TestClient, evaluator: Headers) -> None:
    body = release(
        tables=[
            {"id": "all", "kind": "likert", "question": "trust_confidence"},
            {"id": "site-1", "kind": "likert", "question": "trust_confidence", "site": ["site-1"]},
        ]
    )
    whole, site_1 = publish(client, evaluator, body)["tables"]
    assert [r["count"] for r in whole["rows"]] == [0, 20, 0, 29, 10]
    assert (whole["mean"], whole["median"]) == (3.49, 4.0)
    assert site_1["site"] == ["site-1"]
    assert site_1["rows"][4]["count"] is None  # 3 "other"s answered 5
    assert [site_1[k] for k in ("mean", "median", "top2_percent", "bottom2_percent")] == [None] * 4


def test_csv_of_a_release_and_of_a_table(
    client: TestClient, evaluator: Headers, make_key: MakeKey
) -> None:
    created = publish(client, evaluator, release())
    reader = bearer(make_key("reader"))
    whole = client.get(f"{RELEASES}/midway-2015", params={"format": "csv"}, headers=reader)
    assert whole.status_code == 200
    assert whole.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(whole.text, newline="")))
    assert next(iter(csv.reader(io.StringIO(whole.text))))[0] == "table"
    roles_lines = [line for line in lines if line["table"] == "roles"]
    assert len(roles_lines) == 3 * 3  # the whole scope and two sites, three roles each
    assert len(lines) == len(roles_lines) + 5 * 4  # 5 points, whole scope and three roles
    table = created["tables"][0]
    site_1_other = next(
        line for line in roles_lines if line["group"] == "site-1" and line["value"] == "other"
    )
    assert (site_1_other["count"], site_1_other["suppressed"]) == ("", "true")
    assert roles_lines[0]["count"] == str(table["rows"][0]["count"])
    one = client.get(
        f"{RELEASES}/midway-2015/tables/confidence", params={"format": "csv"}, headers=reader
    )
    assert one.status_code == 200
    table_lines = list(csv.DictReader(io.StringIO(one.text, newline="")))
    assert "table" not in table_lines[0]
    assert len(table_lines) == 20
    assert [line["value"] for line in table_lines[:5]] == ["1", "2", "3", "4", "5"]


def test_listing_is_paginated_and_withdrawal_is_410(
    client: TestClient, evaluator: Headers, admin: Headers, make_key: MakeKey
) -> None:
    for i in range(3):
        publish(client, evaluator, release(f"r-{i}"))
    reader = bearer(make_key("reader"))
    first = client.get(RELEASES, params={"limit": 2}, headers=reader).json()
    assert [r["id"] for r in first["items"]] == ["r-0", "r-1"]
    assert set(first["items"][0]) == {"id", "title", "published_at", "n_responses"}
    second = client.get(
        RELEASES, params={"limit": 2, "cursor": first["next_cursor"]}, headers=reader
    ).json()
    assert [r["id"] for r in second["items"]] == ["r-2"]
    assert second["next_cursor"] is None
    assert_problem(client.delete(f"{RELEASES}/r-1", headers=evaluator), 403)
    assert client.delete(f"{RELEASES}/r-1", headers=admin).status_code == 204
    assert_problem(client.get(f"{RELEASES}/r-1", headers=reader), 410)
    assert_problem(client.get(f"{RELEASES}/r-1/tables/roles", headers=reader), 410)
    assert_problem(client.delete(f"{RELEASES}/r-1", headers=admin), 410)
    listed = client.get(RELEASES, headers=reader).json()["items"]
    assert [r["id"] for r in listed] == ["r-0", "r-2"]
    # the id stays taken
    assert_problem(client.post(RELEASES, json=release("r-1"), headers=evaluator), 409)
    assert_problem(client.get(f"{RELEASES}/nope", headers=reader), 404)
    assert_problem(client.get(f"{RELEASES}/r-0/tables/nope", headers=reader), 404)
    assert_problem(client.get("/v1/surveys/nope/releases", headers=reader), 404)
    bad_cursor = client.get(RELEASES, params={"cursor": "!!"}, headers=reader)
    assert_problem(bad_cursor, 422, ["query", "cursor"])


def test_a_site_bound_reader_sees_the_releases_of_its_sites(
    client: TestClient, evaluator: Headers, make_key: MakeKey
) -> None:
    site_1_only = [{"id": "roles", "kind": "composition", "question": "role", "site": ["site-1"]}]
    both = [
        {"id": "roles", "kind": "composition", "question": "role", "site": ["site-1", "site-2"]}
    ]
    publish(client, evaluator, release("everywhere"))
    publish(client, evaluator, release("site-1", tables=site_1_only))
    publish(client, evaluator, release("both", tables=both))
    bound = bearer(make_key("reader", sites=["site-1"]))
    listed = client.get(RELEASES, headers=bound).json()["items"]
    assert [r["id"] for r in listed] == ["site-1"]
    assert client.get(f"{RELEASES}/site-1", headers=bound).status_code == 200
    for hidden in ("everywhere", "both"):
        assert_problem(client.get(f"{RELEASES}/{hidden}", headers=bound), 404)
        assert_problem(client.get(f"{RELEASES}/{hidden}/tables/roles", headers=bound), 404)
    unbound = bearer(make_key("reader"))
    assert len(client.get(RELEASES, headers=unbound).json()["items"]) == 3
    # a site-bound evaluator publishes over its own sites only
    bound_evaluator = bearer(make_key("evaluator", sites=["site-2"]))
    mine = publish(
        client, bound_evaluator, release("mine", tables=[site_1_only[0] | {"site": None}])
    )
    assert mine["tables"][0]["site"] == ["site-2"]
    assert mine["tables"][0]["n"] == 24
    refused = client.post(
        RELEASES, json=release("theirs", tables=site_1_only), headers=bound_evaluator
    )
    assert_problem(refused, 403)


def _table(**fields: Any) -> Json:
    return {"id": "t", "kind": "composition", "question": "role", **fields}


BAD_TABLES: list[tuple[list[Json], list[str | int]]] = [
    ([_table(question="nope")], ["tables", 0, "question"]),
    ([_table(kind="likert")], ["tables", 0, "kind"]),
    ([_table(kind="themes")], ["tables", 0, "kind"]),
    ([_table(question="years")], ["tables", 0, "kind"]),
    ([_table(kind="themes", question="trust_actions")], ["tables", 0, "question"]),
    ([_table(), _table()], ["tables", 1, "id"]),
    ([_table(by="years")], ["tables", 0, "by"]),
    ([_table(by="nope")], ["tables", 0, "by"]),
    ([_table(site=["site-9"])], ["tables", 0, "site"]),
    ([_table(wave=["later"])], ["tables", 0, "wave"]),
    ([_table(q={"role": ["chef"]})], ["tables", 0, "q", "role"]),
    ([_table(q={"nope": ["x"]})], ["tables", 0, "q", "nope"]),
    ([_table(q={"trust_confidence": [6]})], ["tables", 0, "q", "trust_confidence"]),
    ([_table(q={"role": []})], ["tables", 0, "q", "role"]),
    ([_table(kind="pie")], ["tables", 0, "kind"]),
    ([_table(id="Not A Slug")], ["tables", 0, "id"]),
    ([_table(extra=1)], ["tables", 0, "extra"]),
    ([_table(id=f"t{i}") for i in range(51)], ["tables"]),
    ([], ["tables"]),
]


@pytest.mark.parametrize(("tables", "loc"), BAD_TABLES)
def test_bad_tables_are_422_naming_the_field(
    client: TestClient, evaluator: Headers, tables: list[Json], loc: list[str | int]
) -> None:
    response = client.post(RELEASES, json=release(tables=tables), headers=evaluator)
    assert_problem(response, 422, loc)
    assert client.get(RELEASES, headers=evaluator).json()["items"] == []


def test_min_cell_is_never_below_hearme_min_cell(
    db_url: str, database: Database, make_key: MakeKey
) -> None:
    settings = Settings(database_url=db_url, min_cell=3)
    with TestClient(create_app(settings, database=database)) as client:
        admin = bearer(make_key("admin"))
        create_survey(client, admin)
        load(client, admin, roles(7, 4, 3))
        for asked in (1, 2):
            response = client.post(
                RELEASES, json=release(f"k{asked}", min_cell=asked), headers=admin
            )
            assert_problem(response, 422, ["min_cell"])
        default = publish(client, admin, release("default"))
        assert default["min_cell"] == 3
        assert [r["count"] for r in default["tables"][0]["rows"]] == [7, 4, 3]
        higher = publish(client, admin, release("higher", min_cell=8))
        assert higher["min_cell"] == 8
        assert higher["tables"][0]["min_cell"] == 8
        assert [r["count"] for r in higher["tables"][0]["rows"]] == [None, None, None]


def test_a_table_whose_base_is_below_min_cell_is_published_null(
    client: TestClient, evaluator: Headers
) -> None:
    tables = [_table(q={"role": ["other"]}, site=["site-1"])]  # 3 responses
    created = publish(client, evaluator, release(tables=tables))
    table = created["tables"][0]
    assert (table["n"], table["missing"]) == (None, 0) or table["n"] is None
    assert all(r["count"] in (None, 0) for r in table["rows"])
    assert all(r["percent"] is None for r in table["rows"])


def test_publishing_needs_an_evaluator_or_admin_and_json(
    client: TestClient, evaluator: Headers, make_key: MakeKey
) -> None:
    for role in ("reader", "coder", "submitter"):
        response = client.post(RELEASES, json=release(), headers=bearer(make_key(role)))
        assert_problem(response, 403)
    response = client.post(
        RELEASES,
        content=b"id=x",
        headers={**evaluator, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415)
    assert_problem(
        client.post(
            RELEASES, content=b"{", headers={**evaluator, "Content-Type": "application/json"}
        ),
        422,
    )


def test_submissions_go_on_while_a_publication_audits(
    client: TestClient,
    admin: Headers,
    evaluator: Headers,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On PostgreSQL publication reads a snapshot and locks only the release table, so a
    submission made while its audit solves completes at once, and counts in later
    releases only. (SQLite has one writer at a time: a publication is one write.)"""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises every write, publications included")
    auditing, finish = threading.Event(), threading.Event()
    real = audit.protect

    def slow(*args: Any, **kwargs: Any) -> Any:
        auditing.set()
        finish.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(audit, "protect", slow)
    published: list[Any] = []
    publisher = threading.Thread(
        target=lambda: published.append(client.post(RELEASES, json=release(), headers=evaluator))
    )
    publisher.start()
    try:
        assert auditing.wait(60)
        submitted: list[Any] = []
        body = {"site": "site-1", "wave": "midway", "answers": {"role": "police"}}
        submitter = threading.Thread(
            target=lambda: submitted.append(
                client.post("/v1/surveys/trust/responses", json=body, headers=admin)
            )
        )
        submitter.start()
        submitter.join(30)
        done_while_auditing = not submitter.is_alive()
    finally:
        finish.set()
        publisher.join(120)
    submitter.join(60)
    assert done_while_auditing, "the submission waited for the publication"
    assert submitted[0].status_code == 201, submitted[0].text
    assert published[0].status_code == 201, published[0].text
    assert published[0].json()["n_responses"] == 59  # the snapshot's, not the newcomer
    later = publish(client, evaluator, release("later"))
    assert later["n_responses"] == 60
