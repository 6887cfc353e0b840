"""Imports of historical data (contract §5): NDJSON and CSV, all or nothing, streamed."""

import csv
import io
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.app import create_app
from service.database import Database
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer, submission

IMPORT = "/v1/surveys/trust/responses:import"
RESPONSES = "/v1/surveys/trust/responses"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
AT = "2015-08-02T10:00:00Z"
CSV_HEADER = [
    "site",
    "wave",
    "submitted_at",
    "role",
    "agencies",
    "trust_confidence",
    "years",
    "cases",
    "involved",
    "trust_actions",
]


def row(
    site: str = "site-1", wave: str = "midway", submitted_at: str | None = AT, **answers: Any
) -> dict[str, Any]:
    body = {**submission(**answers), "site": site, "wave": wave}
    if submitted_at is not None:
        body["submitted_at"] = submitted_at
    return body


def ndjson(rows: Iterable[dict[str, Any]]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def csv_body(rows: Iterable[Iterable[Any]], header: list[str] = CSV_HEADER) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode()


def send(
    client: TestClient,
    headers: dict[str, str],
    body: bytes | Iterator[bytes],
    media_type: str = NDJSON,
    path: str = IMPORT,
) -> httpx.Response:
    response: httpx.Response = client.post(
        path, content=body, headers={**headers, "Content-Type": media_type}
    )
    return response


def db_count(db_url: str, table: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            value = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()
    return int(value)


def stored(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every stored response of the survey, in arrival order."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
        page = client.get(RESPONSES, params=params, headers=headers)
        assert page.status_code == 200, page.text
        items += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return items


def when(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def error_rows(body: dict[str, Any]) -> set[Any]:
    return {error["loc"][0] for error in body["errors"]}


def assert_nothing_stored(db_url: str, responses: int = 0) -> None:
    assert db_count(db_url, "response") == responses
    if responses == 0:
        assert db_count(db_url, "answer") == 0


# --- success -----------------------------------------------------------------------


def test_ndjson_import_stores_every_row(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    rows = [
        row(trust_actions="  Listen to them.  ", agencies=["school", "ngo"]),
        row(
            site="site-2",
            wave="final",
            submitted_at="2016-08-15T09:30:00+01:00",
            role="health",
            trust_confidence=1,
            years=12.5,
            cases=3,
            involved=False,
        ),
        row(submitted_at="2001-02-03T04:05:06Z", role="other", trust_confidence=5, involved=True),
    ]
    response = send(client, admin, ndjson(rows) + b"\n")  # a trailing blank line is fine
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 3}

    items = stored(client, admin)
    assert len(items) == 3
    expected_answers = [
        {
            "role": "police",
            "trust_confidence": 4,
            "trust_actions": "Listen to them.",
            "agencies": ["school", "ngo"],
        },
        {
            "role": "health",
            "trust_confidence": 1,
            "years": 12.5,
            "cases": 3,
            "involved": False,
        },
        {"role": "other", "trust_confidence": 5, "involved": True},
    ]
    for item, sent, answers in zip(items, rows, expected_answers, strict=True):
        assert (item["survey"], item["site"], item["wave"]) == ("trust", sent["site"], sent["wave"])
        assert when(item["submitted_at"]) == when(sent["submitted_at"])
        assert item["answers"] == answers
        got = client.get(f"{RESPONSES}/{item['id']}", headers=admin)
        assert got.json() == item


def test_csv_import_stores_every_row(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    body = csv_body(
        [
            ["site-1", "midway", AT, "police", "police;school", "4", "2.5", "3", "true", "Listen."],
            ["site-2", "final", "2016-09-01T12:00:00Z", "health", "ngo", "2", "", "", "false", ""],
            ["site-1", "midway", AT, "other", "", "5", "40", "0", "", 'Say "yes",\nthen act.'],
            ["site-2", "midway", AT, "police", " school ; ngo ", "1", "0", "", "TRUE", "  "],
        ]
    )
    response = send(client, admin, body, CSV)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 4}

    items = stored(client, admin)
    assert [(i["site"], i["wave"]) for i in items] == [
        ("site-1", "midway"),
        ("site-2", "final"),
        ("site-1", "midway"),
        ("site-2", "midway"),
    ]
    assert when(items[1]["submitted_at"]) == when("2016-09-01T12:00:00Z")
    assert [i["answers"] for i in items] == [
        {
            "role": "police",
            "agencies": ["police", "school"],
            "trust_confidence": 4,
            "years": 2.5,
            "cases": 3,
            "involved": True,
            "trust_actions": "Listen.",
        },
        {"role": "health", "agencies": ["ngo"], "trust_confidence": 2, "involved": False},
        {
            "role": "other",
            "trust_confidence": 5,
            "years": 40,
            "cases": 0,
            "trust_actions": 'Say "yes",\nthen act.',
        },
        {
            "role": "police",
            "agencies": ["school", "ngo"],
            "trust_confidence": 1,
            "years": 0,
            "involved": True,
        },
    ]


def test_csv_columns_may_come_in_any_order_and_some_questions_may_be_absent(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    header = ["trust_confidence", "submitted_at", "role", "site", "wave"]
    response = send(client, admin, csv_body([["3", AT, "health", "site-2", "midway"]], header), CSV)
    assert response.status_code == 200, response.text
    (item,) = stored(client, admin)
    assert item["site"] == "site-2"
    assert item["answers"] == {"role": "health", "trust_confidence": 3}


@pytest.mark.parametrize("media_type", ["text/csv; charset=utf-8", "TEXT/CSV"])
def test_csv_media_type_parameters_and_case(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], media_type: str
) -> None:
    body = csv_body([["site-1", "midway", AT, "police", "", "4", "", "", "", ""]])
    response = send(client, admin, body, media_type)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 1}


def test_an_evaluator_may_import_for_its_sites(
    client: TestClient, make_key: MakeKey, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    evaluator = bearer(make_key("evaluator", sites=["site-1"]))
    response = send(client, evaluator, ndjson([row(), row()]))
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 2}
    assert len(stored(client, admin)) == 2


# --- submitted_at and the wave's window ------------------------------------------


@pytest.mark.parametrize(
    ("wave", "submitted_at", "accepted"),
    [
        ("final", "2016-07-01T00:00:00Z", True),
        ("final", "2016-10-31T23:59:59Z", True),
        ("final", "2016-08-01T12:00:00+02:00", True),
        ("final", "2016-06-30T23:59:59Z", False),
        ("final", "2016-11-01T00:00:00Z", False),
        ("final", "2016-11-01T00:30:00+01:00", True),  # 2016-10-31T23:30Z
        ("final", "2015-08-02T10:00:00Z", False),
        ("midway", "1990-01-01T00:00:00Z", True),
        ("midway", "2016-09-01T00:00:00Z", True),
    ],
)
def test_submitted_at_must_lie_in_its_wave_window(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    db_url: str,
    wave: str,
    submitted_at: str,
    accepted: bool,
) -> None:
    rows = [row(), row(wave=wave, submitted_at=submitted_at)]
    response = send(client, admin, ndjson(rows))
    if accepted:
        assert response.status_code == 200, response.text
        assert response.json() == {"imported": 2}
        return
    body = assert_problem(response, 422)
    assert [e["loc"] for e in body["errors"]] == [[2, "submitted_at"]]
    assert_nothing_stored(db_url)


def test_submitted_at_is_required_on_every_ndjson_row(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    rows = [row(), row(submitted_at=None), row(), {**row(), "submitted_at": None}]
    body = assert_problem(send(client, admin, ndjson(rows)), 422)
    assert sorted(e["loc"] for e in body["errors"]) == [[2, "submitted_at"], [4, "submitted_at"]]
    assert_nothing_stored(db_url)


def test_submitted_at_is_required_on_every_csv_row(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    body = csv_body(
        [
            ["site-1", "midway", AT, "police", "", "4", "", "", "", ""],
            ["site-1", "midway", "", "police", "", "4", "", "", "", ""],
        ]
    )
    problem = assert_problem(send(client, admin, body, CSV), 422)
    assert [e["loc"] for e in problem["errors"]] == [[2, "submitted_at"]]
    assert_nothing_stored(db_url)


def test_a_csv_without_a_submitted_at_column_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    header = ["site", "wave", "role", "trust_confidence"]
    response = send(client, admin, csv_body([["site-1", "midway", "police", "4"]], header), CSV)
    body = assert_problem(response, 422)
    assert any("submitted_at" in e["loc"] for e in body["errors"]), body
    assert_nothing_stored(db_url)


# --- all or nothing ----------------------------------------------------------------


def test_one_bad_row_stores_nothing_and_each_bad_row_is_named_ndjson(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    existing = client.post(RESPONSES, json=submission(), headers=admin)
    assert existing.status_code == 201
    rows = [
        row(),
        row(trust_confidence="4"),  # a string is not a scale value
        row(site="site-2"),
        row(wave="final", submitted_at="2016-08-01T00:00:00Z"),
        row(site="site-9"),  # unknown site
        row(),
    ]
    body = assert_problem(send(client, admin, ndjson(rows)), 422)
    assert error_rows(body) == {2, 5}
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert (2, "answers", "trust_confidence") in locs
    assert (5, "site") in locs
    assert_nothing_stored(db_url, responses=1)
    assert [i["id"] for i in stored(client, admin)] == [existing.json()["id"]]


def test_one_bad_row_stores_nothing_and_each_bad_row_is_named_csv(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    good = ["site-1", "midway", AT, "police", "", "4", "", "", "", ""]
    body = csv_body(
        [
            good,
            ["site-1", "midway", AT, "judge", "", "4", "", "", "", ""],  # not an option
            good,
            good,
            ["site-1", "midway", AT, "police", "police;bank", "9", "", "", "", ""],
            good,
        ]
    )
    problem = assert_problem(send(client, admin, body, CSV), 422)
    assert error_rows(problem) == {2, 5}
    locs = {tuple(e["loc"][:3]) for e in problem["errors"]}
    assert (2, "answers", "role") in locs
    assert (5, "answers", "trust_confidence") in locs
    assert any(loc[:3] == (5, "answers", "agencies") for loc in locs)
    assert_nothing_stored(db_url)


def test_a_bad_row_after_stored_batches_still_stores_nothing(
    db_url: str, make_key: MakeKey, survey_admin_app: TestClient
) -> None:
    admin = bearer(make_key("admin", name="batch-admin"))
    rows = [row() for _ in range(25)]
    rows[21] = row(trust_confidence=0)
    body = assert_problem(send(survey_admin_app, admin, ndjson(rows)), 422)
    assert error_rows(body) == {22}
    assert_nothing_stored(db_url)
    ok = send(survey_admin_app, admin, ndjson(rows[:21]))
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"imported": 21}
    assert db_count(db_url, "response") == 21


@pytest.fixture
def survey_admin_app(
    db_url: str, client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> Iterator[TestClient]:
    """A second app on the same database, storing imports in batches of 4."""
    settings = Settings(database_url=db_url, import_batch_size=4)
    database = Database(settings)
    with TestClient(create_app(settings, database=database)) as small_batches:
        yield small_batches
    database.dispose()


def test_an_invalid_json_line_is_named(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    lines = [
        orjson.dumps(row()),
        b'{"site": "site-1", "wave": ',
        orjson.dumps(row()),
        b'["not", "an", "object"]',
        orjson.dumps(row()),
    ]
    body = assert_problem(send(client, admin, b"\n".join(lines) + b"\n"), 422)
    assert error_rows(body) == {2, 4}
    assert_nothing_stored(db_url)


def test_a_row_with_unknown_or_missing_envelope_fields_is_named(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    rows = [
        row(),
        {**row(), "colour": "blue"},
        {"wave": "midway", "submitted_at": AT, "answers": {"role": "police"}},
        {**row(), "answers": {"role": "police", "trust_confidence": 4, "mood": "good"}},
    ]
    body = assert_problem(send(client, admin, ndjson(rows)), 422)
    assert error_rows(body) == {2, 3, 4}
    assert_nothing_stored(db_url)


def test_a_body_that_is_not_utf8_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    body = ndjson([row()]) + b'{"site": "\xff\xfe"}\n'
    assert_problem(send(client, admin, body), 422)
    assert_nothing_stored(db_url)


@pytest.mark.parametrize(
    ("header", "column"),
    [
        (["site", "wave", "submitted_at", "role", "trust_confidence", "mood"], "mood"),
        (["wave", "submitted_at", "role", "trust_confidence"], "site"),
        (["site", "submitted_at", "role", "trust_confidence"], "wave"),
    ],
)
def test_a_csv_with_an_unknown_or_missing_column_is_422(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    db_url: str,
    header: list[str],
    column: str,
) -> None:
    values = {"site": "site-1", "wave": "midway", "submitted_at": AT, "role": "police"}
    cells = [values.get(c, "4") for c in header]
    body = assert_problem(send(client, admin, csv_body([cells, cells], header), CSV), 422)
    assert any(column in e["loc"] for e in body["errors"]), body
    assert_nothing_stored(db_url)


@pytest.mark.parametrize(
    ("column", "cell"),
    [
        ("trust_confidence", "4.0"),
        ("trust_confidence", "0"),
        ("trust_confidence", ""),  # required
        ("role", ""),  # required
        ("role", "Police"),
        ("years", "nan"),
        ("years", "inf"),
        ("years", "51"),
        ("years", "-1"),
        ("years", "two"),
        ("cases", "1.5"),
        ("involved", "yes"),
        ("agencies", "police;police"),
        ("agencies", "police;bank"),
        ("trust_actions", "x" * 201),
        ("trust_actions", "a\x00b"),
    ],
)
def test_a_bad_csv_cell_is_named(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    db_url: str,
    column: str,
    cell: str,
) -> None:
    good = dict(
        zip(CSV_HEADER, ["site-1", "midway", AT, "police", "", "4", "", "", "", ""], strict=True)
    )
    bad = {**good, column: cell}
    body = csv_body([list(good.values()), list(bad.values())])
    problem = assert_problem(send(client, admin, body, CSV), 422)
    assert {tuple(e["loc"][:3]) for e in problem["errors"]} == {(2, "answers", column)}, problem
    assert_nothing_stored(db_url)


def test_a_utf8_byte_order_mark_is_ignored(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    """Spreadsheets save CSV as UTF-8 with a BOM; the first column is still `site`."""
    csv_file = b"\xef\xbb\xbf" + csv_body(
        [["site-2", "midway", AT, "health", "", "3", "", "", "", ""]]
    )
    response = send(client, admin, csv_file, CSV)
    assert response.status_code == 200, response.text
    ndjson_file = b"\xef\xbb\xbf" + ndjson([row()])
    response = send(client, admin, ndjson_file)
    assert response.status_code == 200, response.text
    assert [i["site"] for i in stored(client, admin)] == ["site-2", "site-1"]


def test_ndjson_with_crlf_line_ends(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    body = b"\r\n".join(orjson.dumps(row(trust_actions=f"n{i}")) for i in range(3)) + b"\r\n"
    response = send(client, admin, body)
    assert response.status_code == 200, response.text
    assert [i["answers"]["trust_actions"] for i in stored(client, admin)] == ["n0", "n1", "n2"]


def test_many_bad_rows_are_reported_up_to_a_cap(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    rows = [row(trust_confidence=9) for _ in range(3_000)]
    body = assert_problem(send(client, admin, ndjson(rows)), 422)
    assert 100 <= len(body["errors"]) <= 1000
    assert [e["loc"][0] for e in body["errors"]] == list(range(1, len(body["errors"]) + 1))
    assert_nothing_stored(db_url)


def test_a_csv_row_with_the_wrong_number_of_cells_is_named(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    header = ["site", "wave", "submitted_at", "role", "trust_confidence"]
    body = csv_body(
        [
            ["site-1", "midway", AT, "police", "4"],
            ["site-1", "midway", AT, "police"],
            ["site-1", "midway", AT, "police", "4", "extra"],
        ],
        header,
    )
    problem = assert_problem(send(client, admin, body, CSV), 422)
    assert error_rows(problem) == {2, 3}
    assert_nothing_stored(db_url)


# --- refusals before the body is read ------------------------------------------------


@pytest.mark.parametrize("media_type", ["application/json", "text/plain", "multipart/form-data"])
def test_a_wrong_content_type_is_415(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str, media_type: str
) -> None:
    assert_problem(send(client, admin, ndjson([row()]), media_type), 415)
    assert_nothing_stored(db_url)


def test_a_missing_content_type_is_415(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    response = client.post(IMPORT, content=ndjson([row()]), headers=admin)
    assert_problem(response, 415)
    assert_nothing_stored(db_url)


@pytest.mark.parametrize("role", ["reader", "submitter", "coder"])
def test_other_roles_may_not_import(
    client: TestClient, make_key: MakeKey, survey: dict[str, Any], db_url: str, role: str
) -> None:
    assert_problem(send(client, bearer(make_key(role)), ndjson([row()])), 403)
    assert_nothing_stored(db_url)


def test_importing_without_a_key_is_401(
    client: TestClient, survey: dict[str, Any], db_url: str
) -> None:
    assert_problem(send(client, {}, ndjson([row()])), 401)
    assert_nothing_stored(db_url)


def test_importing_into_an_unknown_survey_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    response = send(client, admin, ndjson([row()]), path="/v1/surveys/nope/responses:import")
    assert_problem(response, 404)
    assert_nothing_stored(db_url)


def test_an_evaluator_bound_to_a_site_may_not_import_other_sites(
    client: TestClient, make_key: MakeKey, survey: dict[str, Any], db_url: str
) -> None:
    evaluator = bearer(make_key("evaluator", sites=["site-1"]))
    rows = [row(), row(site="site-2"), row()]
    body = assert_problem(send(client, evaluator, ndjson(rows)), 422)
    assert error_rows(body) == {2}
    assert any(e["loc"][:2] == [2, "site"] for e in body["errors"]), body
    assert_nothing_stored(db_url)


# --- size limits -------------------------------------------------------------------


def big_rows(count: int, text_length: int = 150) -> list[dict[str, Any]]:
    return [row(trust_actions=f"{i:06d} " + "x" * text_length) for i in range(count)]


def test_an_import_over_max_body_but_under_max_import_succeeds(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    body = ndjson(big_rows(5_000))
    assert len(body) > 1024 * 1024  # HEARME_MAX_BODY's default
    # a JSON submission that size is refused; the import is not
    huge = submission(trust_actions="x" * (1024 * 1024))
    assert_problem(client.post(RESPONSES, json=huge, headers=admin), 413)

    response = send(client, admin, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 5_000}
    assert db_count(db_url, "response") == 5_000
    items = stored(client, admin)
    assert [i["answers"]["trust_actions"][:6] for i in items] == [f"{i:06d}" for i in range(5_000)]


@pytest.fixture
def small_import_app(
    db_url: str, client: TestClient, survey: dict[str, Any]
) -> Iterator[TestClient]:
    """An app on the same database whose imports are capped at 10,000 bytes."""
    settings = Settings(database_url=db_url, max_import=10_000)
    with TestClient(create_app(settings)) as small:
        yield small


def test_an_import_over_max_import_is_413_and_stores_nothing(
    small_import_app: TestClient, admin: dict[str, str], db_url: str
) -> None:
    body = ndjson(big_rows(100))
    assert len(body) > 10_000
    # declared length
    assert_problem(send(small_import_app, admin, body), 413)
    assert_nothing_stored(db_url)
    # streamed, without a declared length
    chunks = iter([body[i : i + 1000] for i in range(0, len(body), 1000)])
    assert_problem(send(small_import_app, admin, chunks), 413)
    assert_nothing_stored(db_url)
    # under the cap is fine
    small = ndjson(big_rows(10))
    assert len(small) < 10_000
    response = send(small_import_app, admin, small)
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": 10}


STREAMED_ROWS = 100_000


@pytest.mark.slow  # about 10 s on SQLite, 25 s on PostgreSQL
def test_a_streamed_import_of_100000_rows(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    line = orjson.dumps(row()) + b"\n"

    def generate() -> Iterator[bytes]:
        for _ in range(STREAMED_ROWS // 1000):
            yield line * 1000

    started = time.perf_counter()
    response = send(client, admin, generate())
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    assert response.json() == {"imported": STREAMED_ROWS}
    assert db_count(db_url, "response") == STREAMED_ROWS
    assert db_count(db_url, "answer") == 2 * STREAMED_ROWS
    assert elapsed < 300, f"{elapsed:.0f} s"
