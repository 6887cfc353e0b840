"""Every stored definition compiles, and question ids are data (issue 10's two bugs).

A definition the answers validator cannot be built from (an integer question bounded by
-3.68e154) was stored, and every later call touching its survey was a 500; a question
whose id is also a pydantic model attribute (`model_config`) was stored and then every
answer to it refused as an unknown question. Both are checked here through HTTP on both
engines; `tests/service/test_definition_property.py` checks the general rule.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_problem, survey_definition

SURVEY = "/v1/surveys/trust"
RESPONSES = "/v1/surveys/trust/responses"


def number_question(**fields: Any) -> dict[str, Any]:
    return {"id": "count", "type": "number", "text": "How many?", **fields}


UNCOMPILABLE = [
    pytest.param(number_question(integer=True, max=-3.68e154), ["max"], id="max=-3.68e154"),
    pytest.param(number_question(integer=True, min=3.68e154), ["min"], id="min=3.68e154"),
    pytest.param(number_question(integer=True, min=0.2, max=0.8), ["max"], id="no-integer"),
    pytest.param(
        {
            "id": "scale",
            "type": "likert",
            "text": "How much?",
            "scale": [{"value": 1, "label": "a"}, {"value": 10**30, "label": "b"}],
        },
        ["scale", 1, "value"],
        id="likert-10**30",
    ),
]


@pytest.mark.parametrize(("question", "field"), UNCOMPILABLE)
def test_an_uncompilable_definition_is_a_422_and_not_stored(
    client: TestClient, admin: dict[str, str], question: dict[str, Any], field: list[Any]
) -> None:
    created = client.post(
        "/v1/surveys", json=survey_definition(questions=[question]), headers=admin
    )
    assert_problem(created, 422, ["questions", 0, *field])
    assert client.get(SURVEY, headers=admin).status_code == 404


@pytest.mark.parametrize(("question", "field"), UNCOMPILABLE)
def test_an_uncompilable_replacement_is_a_422_and_changes_nothing(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    question: dict[str, Any],
    field: list[Any],
) -> None:
    replaced = client.put(SURVEY, json=survey_definition(questions=[question]), headers=admin)
    assert_problem(replaced, 422, ["questions", 0, *field])
    assert client.get(SURVEY, headers=admin).json() == survey
    submitted = client.post(
        RESPONSES,
        json={
            "site": "site-1",
            "wave": "midway",
            "answers": {"role": "police", "trust_confidence": 4},
        },
        headers=admin,
    )
    assert submitted.status_code == 201, submitted.text


def test_integer_bounds_beyond_a_float_are_kept_to_the_storable_range(
    client: TestClient, admin: dict[str, str]
) -> None:
    definition = survey_definition(
        questions=[number_question(integer=True, min=-1e300, max=1e300, required=True)]
    )
    assert client.post("/v1/surveys", json=definition, headers=admin).status_code == 201
    for value, status in ((-(2**53), 201), (2**53, 201), (7, 201), (2**53 + 1, 422)):
        body = {"site": "site-1", "wave": "midway", "answers": {"count": value}}
        answered = client.post(RESPONSES, json=body, headers=admin)
        assert answered.status_code == status, (value, answered.text)
        if status == 201:
            assert answered.json()["answers"] == {"count": value}


def test_integer_bounds_round_inwards(client: TestClient, admin: dict[str, str]) -> None:
    definition = survey_definition(questions=[number_question(integer=True, min=0.5, max=3.5)])
    assert client.post("/v1/surveys", json=definition, headers=admin).status_code == 201
    for value, status in ((0, 422), (1, 201), (3, 201), (4, 422)):
        body = {"site": "site-1", "wave": "midway", "answers": {"count": value}}
        answered = client.post(RESPONSES, json=body, headers=admin)
        assert answered.status_code == status, (value, answered.text)


# Attributes of pydantic's BaseModel (and of Python objects) that are valid slugs.
MODEL_INTERNALS = [
    "model_config",
    "model_fields",
    "model_computed_fields",
    "model_extra",
    "model_fields_set",
    "model_dump",
    "model_validate",
    "model_post_init",
    "schema",
    "json",
    "dict",
    "copy",
    "construct",
    "validate",
    "fields",
    "items",
    "keys",
    "get",
]


def test_question_ids_that_are_model_internals_are_ordinary_ids(
    client: TestClient, admin: dict[str, str]
) -> None:
    questions: list[dict[str, Any]] = [
        {"id": qid, "type": "boolean", "text": f"Question {qid}"} for qid in MODEL_INTERNALS
    ]
    questions[0] = {
        "id": "model_config",
        "type": "choice",
        "text": "Role",
        "required": True,
        "options": [{"value": "police", "label": "Police"}, {"value": "health", "label": "Health"}],
    }
    created = client.post("/v1/surveys", json=survey_definition(questions=questions), headers=admin)
    assert created.status_code == 201, created.text

    answers: dict[str, Any] = {qid: index % 2 == 0 for index, qid in enumerate(MODEL_INTERNALS)}
    answers["model_config"] = "health"
    body = {"site": "site-1", "wave": "midway", "answers": answers}
    submitted = client.post(RESPONSES, json=body, headers=admin)
    assert submitted.status_code == 201, submitted.text
    assert submitted.json()["answers"] == answers
    stored = client.get(f"{RESPONSES}/{submitted.json()['id']}", headers=admin)
    assert stored.json()["answers"] == answers

    missing = client.post(
        RESPONSES,
        json={"site": "site-1", "wave": "midway", "answers": {"json": True}},
        headers=admin,
    )
    assert_problem(missing, 422, ["answers", "model_config"])
    wrong = client.post(
        RESPONSES,
        json={"site": "site-1", "wave": "midway", "answers": {"model_config": "x", "nope": 1}},
        headers=admin,
    )
    body_422 = assert_problem(wrong, 422, ["answers", "model_config"], ["answers", "nope"])
    assert {e["msg"] for e in body_422["errors"] if e["loc"] == ["answers", "nope"]} == {
        "unknown question id"
    }

    table = client.get("/v1/surveys/trust/stats/composition/model_config", headers=admin)
    assert table.status_code == 200, table.text
    assert {r["value"]: r["count"] for r in table.json()["rows"]} == {"police": 0, "health": 1}


def _many(make: Any, count: int) -> list[Any]:
    return [make(i) for i in range(count)]


OVER_MAX_ITEMS = [
    pytest.param(
        {"sites": _many(lambda i: {"id": f"s{i}", "name": "S"}, 1001)}, ["sites"], id="sites"
    ),
    pytest.param(
        {"waves": _many(lambda i: {"id": f"w{i}", "name": "W"}, 101)}, ["waves"], id="waves"
    ),
    pytest.param(
        {"questions": _many(lambda i: {"id": f"q{i}", "type": "boolean", "text": "Q"}, 1001)},
        ["questions"],
        id="questions",
    ),
    pytest.param(
        {
            "questions": [
                {
                    "id": "q",
                    "type": "multi_choice",
                    "text": "Q",
                    "options": _many(lambda i: {"value": f"o{i}", "label": "O"}, 1001),
                }
            ]
        },
        ["questions", 0, "options"],
        id="options",
    ),
    pytest.param(
        {
            "questions": [
                {
                    "id": "q",
                    "type": "likert",
                    "text": "Q",
                    "scale": _many(lambda i: {"value": i, "label": "P"}, 12),
                }
            ]
        },
        ["questions", 0, "scale"],
        id="scale",
    ),
]


@pytest.mark.parametrize(("changes", "loc"), OVER_MAX_ITEMS)
def test_an_array_over_its_max_items_is_a_422_on_put(
    client: TestClient,
    admin: dict[str, str],
    survey: dict[str, Any],
    changes: dict[str, Any],
    loc: list[Any],
) -> None:
    replaced = client.put(SURVEY, json=survey_definition(**changes), headers=admin)
    assert_problem(replaced, 422, loc)
    assert client.get(SURVEY, headers=admin).json()["version"] == 1


@pytest.mark.parametrize(
    ("field", "value"), [("required", 0), ("required", "true"), ("integer", 1)]
)
def test_booleans_of_a_definition_are_json_booleans(
    client: TestClient, admin: dict[str, str], field: str, value: Any
) -> None:
    """The schema says boolean; `0` or `"true"` was coerced and stored (Schemathesis)."""
    question = number_question(**{field: value})
    created = client.post(
        "/v1/surveys", json=survey_definition(questions=[question]), headers=admin
    )
    assert_problem(created, 422, ["questions", 0, field])


@pytest.mark.parametrize(
    ("question", "field"),
    [
        (number_question(max=False), "max"),
        (number_question(min=True), "min"),
        (number_question(min="3"), "min"),
        ({"id": "note", "type": "text", "text": "Note", "max_length": True}, "max_length"),
    ],
    ids=["max-false", "min-true", "min-string", "max-length-true"],
)
def test_numbers_of_a_definition_are_json_numbers(
    client: TestClient, admin: dict[str, str], question: dict[str, Any], field: str
) -> None:
    """The schema says number; `"max": false` was stored as 0.0 (Schemathesis ST201)."""
    created = client.post(
        "/v1/surveys", json=survey_definition(questions=[question]), headers=admin
    )
    assert_problem(created, 422, ["questions", 0, field])
