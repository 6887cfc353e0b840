"""Bad input of every kind: each is a 4xx problem+json (never a 500, never a stack trace)
and leaves the database exactly as it was; odd but valid text round-trips exactly."""

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PROBLEM_JSON, submission

RESPONSES = "/v1/surveys/trust/responses"
JSON_HEADERS = {"Content-Type": "application/json"}
BASELINE_TEXT = "Listen to the child."

Snapshot = tuple[list[Any], list[tuple[Any, ...]], int]


def snapshot(client: TestClient, admin: dict[str, str], db_url: str) -> Snapshot:
    """What the API lists, and what the database holds in `answer` and `response`."""
    listed = client.get(RESPONSES, params={"limit": 1000}, headers=admin)
    assert listed.status_code == 200, listed.text
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            answers = conn.execute(
                text(
                    "SELECT question_id, option, number, text FROM answer "
                    "ORDER BY response_pk, question_id, option"
                )
            ).all()
            responses = conn.execute(text("SELECT count(*) FROM response")).scalar_one()
    finally:
        engine.dispose()
    return listed.json()["items"], [tuple(row) for row in answers], responses


def stored_texts(db_url: str) -> list[str]:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT text FROM answer WHERE question_id = 'trust_actions' ORDER BY id")
            )
            return [row[0] for row in rows]
    finally:
        engine.dispose()


@pytest.fixture
def before(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> Snapshot:
    """The survey with one stored response, and the snapshot of that state."""
    created = client.post(RESPONSES, json=submission(trust_actions=BASELINE_TEXT), headers=admin)
    assert created.status_code == 201, created.text
    state = snapshot(client, admin, db_url)
    assert len(state[0]) == 1
    assert state[2] == 1
    assert len(state[1]) == 3
    return state


def assert_rejected(
    response: httpx.Response, status: int | tuple[int, ...], *locs: list[str | int]
) -> None:
    """A 4xx problem+json of `status` (one of them), with no stack trace in it."""
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, response.text
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    body = response.json()
    assert body["status"] == response.status_code
    assert body["title"]
    if response.status_code == 422:
        named = [error["loc"] for error in body["errors"]]
        assert named, response.text
        for loc in locs:
            assert loc in named, f"{loc} not among {named}"


@pytest.fixture
def unchanged(
    client: TestClient, admin: dict[str, str], db_url: str, before: Snapshot
) -> Iterator[None]:
    """Asserts, after the test, that the database is as `before` left it."""
    yield
    assert snapshot(client, admin, db_url) == before


def post_raw(
    client: TestClient, admin: dict[str, str], body: bytes | str, **headers: str
) -> httpx.Response:
    response: httpx.Response = client.post(
        RESPONSES, content=body, headers={**admin, **JSON_HEADERS, **headers}
    )
    return response


def with_answer(name: str, literal: str) -> str:
    """A submission's JSON text with `literal` spliced in verbatim as the answer `name`."""
    body = json.dumps(submission(**{name: "PLACEHOLDER"}))
    spliced = body.replace('"PLACEHOLDER"', literal)
    assert literal in spliced
    return spliced


# --- the body is not a submission -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        '{"site": "site-1", "wave": "midway",',
        "{'site': 'site-1'}",
        '{"site": "site-1" "wave": "midway"}',
        "{,}",
        '{"site": "site-1", "wave": "midway", "answers": {}}}',
        "",
        "   ",
        "\u00ff\u00fe",
        "NaN",
    ],
    ids=[
        "truncated",
        "single-quotes",
        "missing-comma",
        "stray-comma",
        "trailing-brace",
        "empty",
        "blank",
        "latin1-garbage",
        "bare-nan",
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_malformed_json(client: TestClient, admin: dict[str, str], body: str) -> None:
    assert_rejected(post_raw(client, admin, body), 422, ["body"])


@pytest.mark.usefixtures("unchanged")
def test_invalid_utf8(client: TestClient, admin: dict[str, str]) -> None:
    body = json.dumps(submission(trust_actions="X")).encode().replace(b"X", b"\xff\xfe\xc3")
    assert_rejected(post_raw(client, admin, body), 422, ["body"])


@pytest.mark.parametrize(
    "body", ["[]", '[{"site": "site-1"}]', '"site-1"', "42", "4.5", "null", "true"]
)
@pytest.mark.usefixtures("unchanged")
def test_body_not_an_object(client: TestClient, admin: dict[str, str], body: str) -> None:
    assert_rejected(post_raw(client, admin, body), 422)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("site", 1),
        ("site", None),
        ("site", ["site-1"]),
        ("site", {"id": "site-1"}),
        ("wave", 2),
        ("wave", None),
        ("wave", True),
        ("answers", "role=police"),
        ("answers", [["role", "police"]]),
        ("answers", None),
        ("answers", 7),
        ("submitted_at", "yesterday"),
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_wrong_type_of_a_field(
    client: TestClient, admin: dict[str, str], field: str, value: Any
) -> None:
    response = client.post(RESPONSES, json={**submission(), field: value}, headers=admin)
    assert_rejected(response, 422, [field])


@pytest.mark.parametrize("field", ["site", "wave", "answers"])
@pytest.mark.usefixtures("unchanged")
def test_missing_field(client: TestClient, admin: dict[str, str], field: str) -> None:
    body = submission()
    del body[field]
    assert_rejected(client.post(RESPONSES, json=body, headers=admin), 422, [field])


@pytest.mark.parametrize("field", ["id", "received_at", "survey", "Site", "answer"])
@pytest.mark.usefixtures("unchanged")
def test_unknown_top_level_field(client: TestClient, admin: dict[str, str], field: str) -> None:
    body = {**submission(), field: "x"}
    assert_rejected(client.post(RESPONSES, json=body, headers=admin), 422, [field])


# --- size -----------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_body_of_2_mib_is_413(client: TestClient, admin: dict[str, str]) -> None:
    body = json.dumps(submission(trust_actions="x" * (2 * 1024 * 1024)))
    assert_rejected(post_raw(client, admin, body), 413)


@pytest.mark.usefixtures("unchanged")
def test_streamed_body_of_2_mib_without_length_is_413(
    client: TestClient, admin: dict[str, str]
) -> None:
    body = json.dumps(submission(trust_actions="x" * (2 * 1024 * 1024))).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 64 * 1024):
            yield body[start : start + 64 * 1024]

    response = client.post(RESPONSES, content=chunks(), headers={**admin, **JSON_HEADERS})
    assert "content-length" not in {k.lower() for k in response.request.headers}
    assert_rejected(response, 413)


# --- NUL bytes and broken Unicode -----------------------------------------------------


@pytest.mark.parametrize("value", ["\u0000", "before\u0000after", "Listen.\u0000"])
@pytest.mark.usefixtures("unchanged")
def test_nul_in_text(client: TestClient, admin: dict[str, str], value: str) -> None:
    response = client.post(RESPONSES, json=submission(trust_actions=value), headers=admin)
    assert_rejected(response, 422, ["answers", "trust_actions"])


@pytest.mark.parametrize("value", ["site-1\u0000", "\u0000", "site\u00001"])
@pytest.mark.usefixtures("unchanged")
def test_nul_in_site_id(client: TestClient, admin: dict[str, str], value: str) -> None:
    response = client.post(RESPONSES, json={**submission(), "site": value}, headers=admin)
    assert_rejected(response, 422, ["site"])


@pytest.mark.usefixtures("unchanged")
def test_nul_in_wave_id_and_question_id(client: TestClient, admin: dict[str, str]) -> None:
    body = {**submission(**{"role\u0000": "police"}), "wave": "midway\u0000"}
    response = client.post(RESPONSES, json=body, headers=admin)
    assert_rejected(response, 422, ["wave"])


@pytest.mark.usefixtures("unchanged")
def test_nul_in_a_choice_and_in_a_multi_choice(client: TestClient, admin: dict[str, str]) -> None:
    body = submission(role="police\u0000", agencies=["\u0000"])
    response = client.post(RESPONSES, json=body, headers=admin)
    assert_rejected(response, 422, ["answers", "role"])


@pytest.mark.usefixtures("unchanged")
def test_nul_in_the_survey_path(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post("/v1/surveys/trust%00/responses", json=submission(), headers=admin)
    assert_rejected(response, (404, 422))


@pytest.mark.parametrize("literal", ['"\\ud800"', '"a\\udfffb"', '"\\udc00\\ud800"'])
@pytest.mark.usefixtures("unchanged")
def test_lone_surrogate_in_text(client: TestClient, admin: dict[str, str], literal: str) -> None:
    response = post_raw(client, admin, with_answer("trust_actions", literal))
    assert_rejected(response, 422, ["answers", "trust_actions"])


@pytest.mark.usefixtures("unchanged")
def test_lone_surrogate_in_keys_and_ids(client: TestClient, admin: dict[str, str]) -> None:
    body = '{"site": "\\ud800", "wave": "midway", "answers": {"\\udfff": 1}}'
    assert_rejected(post_raw(client, admin, body), 422)


# --- odd but valid text round-trips exactly -------------------------------------------

ROUND_TRIP = {
    "emoji": "We listened 👂🏽 and she smiled 😊 — 👩🏽‍⚕️👨‍👩‍👧‍👦 🇬🇧 🏳️‍🌈",
    "arabic": "يجب أن نستمع إلى الطفل ونبني الثقة",
    "hebrew": "להקשיב לילד ולבנות אמון",
    "bidi-mixed": "Trust \u200fשלום\u200e and \u202bسلام\u202c (42) end",  # noqa: RUF001
    "combining": "cafe\u0301 vs caf\u00e9; n\u0303 and A\u030a",
    "zalgo": "Z\u0351\u0358\u0300a\u0336\u0317\u033al\u0337\u0353"
    "g\u0335\u0489\u031co\u0334\u0347\u0325!",
    "astral": "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 漢字 かな 한국어",  # noqa: RUF001
    "zero-width": "a\u200bb\u200dc\u2060d\ufeffe",
    "quotes-and-escapes": 'She said "it\'s fine" \\ not / really \t tabbed',
}


@pytest.mark.parametrize("name", list(ROUND_TRIP))
def test_unicode_text_round_trips_exactly(
    client: TestClient, admin: dict[str, str], before: Snapshot, db_url: str, name: str
) -> None:
    value = ROUND_TRIP[name]
    assert len(value) <= 200
    created = client.post(RESPONSES, json=submission(trust_actions=value), headers=admin)
    assert created.status_code == 201, created.text
    returned = created.json()["answers"]["trust_actions"]
    assert returned.encode("utf-8") == value.encode("utf-8")
    got = client.get(f"{RESPONSES}/{created.json()['id']}", headers=admin)
    assert got.status_code == 200
    assert got.json()["answers"]["trust_actions"].encode("utf-8") == value.encode("utf-8")
    listed = client.get(RESPONSES, headers=admin).json()["items"]
    assert listed[-1]["answers"]["trust_actions"].encode("utf-8") == value.encode("utf-8")
    assert [t.encode("utf-8") for t in stored_texts(db_url)] == [
        BASELINE_TEXT.encode("utf-8"),
        value.encode("utf-8"),
    ]


# --- SQL metacharacters ---------------------------------------------------------------

SQL_TEXTS = [
    "'); DROP TABLE response; --",
    '"; DELETE FROM answer; --',
    "' OR '1'='1",
    "%",
    "_",
    "100% _sure_ %_%",
    "\\",
    "C:\\temp\\new\\'x'\\\\",
    "$1 ?; :name %(x)s {0}",
]


@pytest.mark.parametrize("value", SQL_TEXTS)
def test_sql_metacharacters_are_stored_verbatim(
    client: TestClient, admin: dict[str, str], before: Snapshot, db_url: str, value: str
) -> None:
    created = client.post(RESPONSES, json=submission(trust_actions=value), headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["answers"]["trust_actions"] == value
    got = client.get(f"{RESPONSES}/{created.json()['id']}", headers=admin)
    assert got.json()["answers"]["trust_actions"] == value
    assert stored_texts(db_url) == [BASELINE_TEXT, value]
    engine = create_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"response", "answer", "survey", "api_key"} <= tables
    items, answers, responses = snapshot(client, admin, db_url)
    assert responses == 2
    assert len(items) == 2
    assert len(answers) == len(before[1]) + 3


@pytest.mark.parametrize("value", ["'); DROP TABLE response; --", "%", "_", "\\"])
@pytest.mark.usefixtures("unchanged")
def test_sql_metacharacters_in_ids_are_rejected(
    client: TestClient, admin: dict[str, str], value: str
) -> None:
    body = {"site": value, "wave": value, "answers": {"role": value, value: 1}}
    response = client.post(RESPONSES, json=body, headers=admin)
    assert_rejected(response, 422, ["site"], ["wave"], ["answers", "role"], ["answers", value])


@pytest.mark.parametrize("value", ["%", "_", "site-%", "' OR '1'='1", "\\"])
@pytest.mark.usefixtures("unchanged")
def test_sql_metacharacters_in_query_filters_are_unknown_sites_and_waves(
    client: TestClient, admin: dict[str, str], value: str
) -> None:
    """Taken as the value it is, never as a pattern or SQL: no site or wave is called
    that, which is a 422 naming the filter (and nothing is changed)."""
    for param in ("site", "wave"):
        listed = client.get(RESPONSES, params={param: value}, headers=admin)
        assert_rejected(listed, 422, ["query", param])
        assert value in listed.json()["errors"][0]["msg"]


# --- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["years", "cases", "trust_confidence"])
@pytest.mark.parametrize(
    "literal",
    [str(10**400), "-" + str(10**400), "1e309", "-1e309", "1e400", str(2**64), "9" * 4000],
    ids=["10**400", "-10**400", "1e309", "-1e309", "1e400", "2**64", "4000-nines"],
)
@pytest.mark.usefixtures("unchanged")
def test_huge_numbers(
    client: TestClient, admin: dict[str, str], question: str, literal: str
) -> None:
    response = post_raw(client, admin, with_answer(question, literal))
    assert_rejected(response, 422, ["answers", question])


@pytest.mark.usefixtures("unchanged")
def test_integer_beyond_a_float_is_refused(client: TestClient, admin: dict[str, str]) -> None:
    # 2**53 + 1 cannot be stored in a float column without changing.
    response = client.post(RESPONSES, json=submission(cases=2**53 + 1), headers=admin)
    assert_rejected(response, 422, ["answers", "cases"])


# --- nesting --------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [2, 50, 500])
@pytest.mark.parametrize("question", ["trust_actions", "role", "agencies", "years"])
@pytest.mark.usefixtures("unchanged")
def test_deeply_nested_answer(
    client: TestClient, admin: dict[str, str], question: str, depth: int
) -> None:
    literal = '{"a": ' * depth + "1" + "}" * depth
    response = post_raw(client, admin, with_answer(question, literal))
    assert_rejected(response, 422, ["answers", question])


@pytest.mark.parametrize("depth", [10_000, 100_000])
@pytest.mark.usefixtures("unchanged")
def test_pathologically_nested_answer(
    client: TestClient, admin: dict[str, str], depth: int
) -> None:
    literal = "[" * depth + "]" * depth
    response = post_raw(client, admin, with_answer("trust_actions", literal))
    assert_rejected(response, 422)


# --- headers --------------------------------------------------------------------------


@pytest.mark.usefixtures("unchanged")
def test_idempotency_key_of_201_characters(client: TestClient, admin: dict[str, str]) -> None:
    headers = {**admin, "Idempotency-Key": "k" * 201}
    response = client.post(RESPONSES, json=submission(), headers=headers)
    assert_rejected(response, 422, ["header", "Idempotency-Key"])


@pytest.mark.usefixtures("unchanged")
def test_idempotency_key_of_0_characters(client: TestClient, admin: dict[str, str]) -> None:
    headers = {**admin, "Idempotency-Key": ""}
    response = client.post(RESPONSES, json=submission(), headers=headers)
    assert_rejected(response, 422, ["header", "Idempotency-Key"])


def test_idempotency_key_of_200_characters_is_accepted(
    client: TestClient, admin: dict[str, str], before: Snapshot
) -> None:
    headers = {**admin, "Idempotency-Key": "k" * 200}
    first = client.post(RESPONSES, json=submission(), headers=headers)
    assert first.status_code == 201, first.text
    again = client.post(RESPONSES, json=submission(), headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/x-ndjson",
        "text/csv",
        "application/jsonx",
    ],
)
@pytest.mark.usefixtures("unchanged")
def test_wrong_content_type_is_415(
    client: TestClient, admin: dict[str, str], content_type: str
) -> None:
    body = json.dumps(submission())
    response = client.post(RESPONSES, content=body, headers={**admin, "Content-Type": content_type})
    assert_rejected(response, 415)


@pytest.mark.usefixtures("unchanged")
def test_missing_content_type_is_415(client: TestClient, admin: dict[str, str]) -> None:
    response = client.post(RESPONSES, content=json.dumps(submission()).encode(), headers=admin)
    assert "content-type" not in {k.lower() for k in response.request.headers}
    assert_rejected(response, 415)


def test_json_with_a_charset_is_accepted(
    client: TestClient, admin: dict[str, str], before: Snapshot
) -> None:
    response = client.post(
        RESPONSES,
        content=json.dumps(submission()),
        headers={**admin, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("stamp", [1438509600, 1438509600000, 1.5])
@pytest.mark.usefixtures("unchanged")
def test_numeric_submitted_at_is_refused(
    client: TestClient, admin: dict[str, str], stamp: float
) -> None:
    body = {**submission(), "submitted_at": stamp}
    response = client.post("/v1/surveys/trust/responses", json=body, headers=admin)
    assert_rejected(response, 422, ["submitted_at"])
