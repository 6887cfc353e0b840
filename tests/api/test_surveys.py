"""Survey definitions (contract §4): create, read, list, refuse malformed definitions, and
replace a definition without ever invalidating a stored response."""

import copy
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import assert_problem, submission, survey_definition

SURVEY = "/v1/surveys/trust"
RESPONSES = "/v1/surveys/trust/responses"

Definition = dict[str, Any]


def assert_contains(actual: Any, expected: Any, path: str = "") -> None:
    """Every field of `expected` is in `actual` with the same value (defaults may be added)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        for key, value in expected.items():
            assert key in actual, f"{path}.{key} missing"
            assert_contains(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), path
        assert len(actual) == len(expected), path
        for index, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_contains(a, e, f"{path}[{index}]")
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def question(definition: Definition, question_id: str) -> dict[str, Any]:
    found: dict[str, Any] = next(q for q in definition["questions"] if q["id"] == question_id)
    return found


def survey_ids(client: TestClient, admin: dict[str, str]) -> list[str]:
    listed = client.get("/v1/surveys", params={"limit": 1000}, headers=admin)
    assert listed.status_code == 200, listed.text
    return [item["id"] for item in listed.json()["items"]]


# --- create and read ------------------------------------------------------------------


def test_create_returns_the_stored_definition(client: TestClient, admin: dict[str, str]) -> None:
    definition = survey_definition()
    created = client.post("/v1/surveys", json=definition, headers=admin)
    assert created.status_code == 201, created.text
    assert created.headers["content-type"].startswith("application/json")
    body = created.json()
    assert_contains(body, definition)
    assert body["version"] == 1
    got = client.get(SURVEY, headers=admin)
    assert got.status_code == 200, got.text
    assert got.json() == body


def test_create_fills_in_the_defaults(client: TestClient, admin: dict[str, str]) -> None:
    definition = survey_definition()
    definition["questions"].append({"id": "notes", "type": "text", "text": "Anything else?"})
    del definition["waves"][0]["opens_at"], definition["waves"][0]["closes_at"]
    created = client.post("/v1/surveys", json=definition, headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert question(body, "notes")["max_length"] == 4000
    assert question(body, "notes")["required"] is False
    assert question(body, "agencies")["required"] is False
    assert question(body, "cases")["integer"] is True
    assert question(body, "years")["integer"] is False
    assert body["waves"][0]["opens_at"] is None
    assert body["waves"][0]["closes_at"] is None


def test_get_an_unknown_survey_is_404(client: TestClient, admin: dict[str, str]) -> None:
    assert_problem(client.get("/v1/surveys/nope", headers=admin), 404)


def test_list_walks_every_page(client: TestClient, admin: dict[str, str]) -> None:
    ids = ["trust", "alpha", "zeta-2", "m_1"]
    for survey_id in ids:
        created = client.post("/v1/surveys", json=survey_definition(id=survey_id), headers=admin)
        assert created.status_code == 201, created.text
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 1}
        if cursor is not None:
            params["cursor"] = cursor
        page = client.get("/v1/surveys", params=params, headers=admin)
        assert page.status_code == 200, page.text
        body = page.json()
        assert len(body["items"]) == 1
        seen.append(body["items"][0]["id"])
        pages += 1
        assert pages <= len(ids), "the cursor never ends"
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    assert len(set(seen)) == len(ids)
    whole = client.get("/v1/surveys", headers=admin)
    assert sorted(item["id"] for item in whole.json()["items"]) == sorted(ids)
    assert whole.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", [0, 1001, -1])
def test_list_limit_out_of_range_is_422(
    client: TestClient, admin: dict[str, str], limit: int
) -> None:
    response = client.get("/v1/surveys", params={"limit": limit}, headers=admin)
    assert_problem(response, 422, ["query", "limit"])


def test_duplicate_survey_id_is_409(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    again = client.post("/v1/surveys", json=survey_definition(title="Another"), headers=admin)
    assert_problem(again, 409)
    got = client.get(SURVEY, headers=admin)
    assert got.json() == survey
    assert survey_ids(client, admin) == ["trust"]


# --- malformed definitions ------------------------------------------------------------


def _append_copy(key: str, index: int) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        d[key].append(copy.deepcopy(d[key][index]))

    return change


def _set(path: list[str | int], value: Any) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        node: Any = d
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return change


def _scale(*values: Any) -> list[dict[str, Any]]:
    return [{"value": v, "label": f"point {v}"} for v in values]


MALFORMED: dict[str, tuple[Callable[[Definition], None], list[str | int]]] = {
    "duplicate-question-ids": (_append_copy("questions", 0), ["questions", 7, "id"]),
    "duplicate-site-ids": (_append_copy("sites", 0), ["sites", 2, "id"]),
    "duplicate-wave-ids": (_append_copy("waves", 1), ["waves", 2, "id"]),
    "duplicate-option-values": (
        _set(["questions", 0, "options", 2, "value"], "police"),
        ["questions", 0, "options", 2, "value"],
    ),
    "duplicate-multi-choice-option-values": (
        _set(["questions", 1, "options", 1, "value"], "ngo"),
        ["questions", 1, "options", 2, "value"],
    ),
    "empty-option-list": (_set(["questions", 0, "options"], []), ["questions", 0, "options"]),
    "empty-multi-choice-option-list": (
        _set(["questions", 1, "options"], []),
        ["questions", 1, "options"],
    ),
    "likert-of-1-point": (_set(["questions", 2, "scale"], _scale(1)), ["questions", 2, "scale"]),
    "likert-of-12-points": (
        _set(["questions", 2, "scale"], _scale(*range(1, 13))),
        ["questions", 2, "scale"],
    ),
    "likert-descending": (
        _set(["questions", 2, "scale"], _scale(1, 3, 2)),
        ["questions", 2, "scale", 2, "value"],
    ),
    "likert-duplicate-value": (
        _set(["questions", 2, "scale"], _scale(1, 2, 2, 3)),
        ["questions", 2, "scale", 2, "value"],
    ),
    "likert-value-2.5": (
        _set(["questions", 2, "scale"], _scale(1, 2.5, 3)),
        ["questions", 2, "scale", 1, "value"],
    ),
    "likert-value-string": (
        _set(["questions", 2, "scale"], _scale(1, "2", 3)),
        ["questions", 2, "scale", 1, "value"],
    ),
    "survey-id-with-space-and-capitals": (_set(["id"], "Bad Id"), ["id"]),
    "site-id-starting-with-dash": (_set(["sites", 0, "id"], "-x"), ["sites", 0, "id"]),
    "question-id-of-65-chars": (_set(["questions", 0, "id"], "a" * 65), ["questions", 0, "id"]),
    "wave-id-empty": (_set(["waves", 0, "id"], ""), ["waves", 0, "id"]),
    "option-value-not-a-slug": (
        _set(["questions", 0, "options", 0, "value"], "Police!"),
        ["questions", 0, "options", 0, "value"],
    ),
    "unknown-question-type": (_set(["questions", 0, "type"], "ranking"), ["questions", 0, "type"]),
    "closes-before-opens": (
        _set(["waves", 1, "closes_at"], "2016-06-30T00:00:00Z"),
        ["waves", 1, "closes_at"],
    ),
    "closes-when-opens": (
        _set(["waves", 1, "closes_at"], "2016-07-01T00:00:00Z"),
        ["waves", 1, "closes_at"],
    ),
    "naive-opens-at": (
        _set(["waves", 1, "opens_at"], "2016-07-01T00:00:00"),
        ["waves", 1, "opens_at"],
    ),
    "number-max-below-min": (_set(["questions", 3, "max"], -1), ["questions", 3, "max"]),
    "text-of-question-empty": (_set(["questions", 6, "text"], ""), ["questions", 6, "text"]),
    "text-max-length-0": (_set(["questions", 6, "max_length"], 0), ["questions", 6, "max_length"]),
    "unknown-question-field": (_set(["questions", 0, "colour"], "red"), ["questions", 0, "colour"]),
    "no-questions": (_set(["questions"], []), ["questions"]),
    "no-sites": (_set(["sites"], []), ["sites"]),
    "empty-title": (_set(["title"], ""), ["title"]),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_definition_is_422_naming_the_field(
    client: TestClient, admin: dict[str, str], case: str
) -> None:
    change, loc = MALFORMED[case]
    definition = survey_definition()
    change(definition)
    response = client.post("/v1/surveys", json=definition, headers=admin)
    assert_problem(response, 422, loc)
    assert survey_ids(client, admin) == []


def test_missing_question_type_is_422_naming_the_field(
    client: TestClient, admin: dict[str, str]
) -> None:
    definition = survey_definition()
    del definition["questions"][4]["type"]
    response = client.post("/v1/surveys", json=definition, headers=admin)
    assert_problem(response, 422, ["questions", 4, "type"])
    assert survey_ids(client, admin) == []


@pytest.mark.parametrize("points", [2, 11])
def test_likert_of_2_to_11_points_is_accepted(
    client: TestClient, admin: dict[str, str], points: int
) -> None:
    definition = survey_definition()
    definition["questions"][2]["scale"] = _scale(*range(0, points))
    response = client.post("/v1/surveys", json=definition, headers=admin)
    assert response.status_code == 201, response.text
    assert [p["value"] for p in question(response.json(), "trust_confidence")["scale"]] == list(
        range(points)
    )


# --- replacing a definition -----------------------------------------------------------


STORED_ANSWERS: dict[str, Any] = {
    "role": "police",
    "agencies": ["school", "ngo"],
    "trust_confidence": 4,
    "years": 30,
    "cases": 3,
    "trust_actions": "Listen to the child.",
}


@pytest.fixture
def answered(client: TestClient, admin: dict[str, str], survey: dict[str, Any]) -> dict[str, Any]:
    """The survey with one stored response (site-1, midway; `involved` unanswered)."""
    body = {"site": "site-1", "wave": "midway", "answers": STORED_ANSWERS}
    created = client.post(RESPONSES, json=body, headers=admin)
    assert created.status_code == 201, created.text
    stored: dict[str, Any] = created.json()
    assert stored["answers"] == STORED_ANSWERS
    return stored


def put(client: TestClient, admin: dict[str, str], definition: Definition) -> httpx.Response:
    response: httpx.Response = client.put(SURVEY, json=definition, headers=admin)
    return response


def test_put_adding_an_optional_question_bumps_the_version(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition()
    definition["questions"].append(
        {"id": "training", "type": "boolean", "text": "Have you had training?"}
    )
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2
    assert_contains(replaced.json(), definition)
    got = client.get(SURVEY, headers=admin).json()
    assert got == replaced.json()
    assert got["updated_at"] >= got["created_at"]
    new = client.post(RESPONSES, json=submission(training=True), headers=admin)
    assert new.status_code == 201, new.text
    assert new.json()["answers"]["training"] is True


def test_put_adding_an_option_is_accepted_by_new_submissions(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    before = client.post(RESPONSES, json=submission(role="teacher"), headers=admin)
    assert_problem(before, 422, ["answers", "role"])
    definition = survey_definition()
    question(definition, "role")["options"].append({"value": "teacher", "label": "Teacher"})
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2
    after = client.post(RESPONSES, json=submission(role="teacher"), headers=admin)
    assert after.status_code == 201, after.text
    assert after.json()["answers"]["role"] == "teacher"


def test_put_removing_an_unused_option_refuses_it_afterwards(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition()
    question(definition, "role")["options"].pop()  # "other", which no response chose
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    refused = client.post(RESPONSES, json=submission(role="other"), headers=admin)
    assert_problem(refused, 422, ["answers", "role"])


def test_put_relabelling_bumps_the_version(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition(title="Professionals' survey, revised")
    question(definition, "role")["options"][0]["label"] = "Police officer"
    question(definition, "trust_confidence")["scale"][4]["label"] = "Extremely confident"
    question(definition, "years")["text"] = "Years in your current post"
    definition["sites"][0]["name"] = "Site One"
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2
    assert_contains(client.get(SURVEY, headers=admin).json(), definition)
    again = put(client, admin, definition)
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 3
    still = client.get(f"{RESPONSES}/{answered['id']}", headers=admin)
    assert still.json() == answered


def test_put_making_an_always_answered_question_required_is_allowed(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition()
    question(definition, "years")["required"] = True
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    missing = client.post(RESPONSES, json=submission(), headers=admin)
    assert_problem(missing, 422, ["answers", "years"])


def test_put_shrinking_max_length_to_the_longest_stored_text_is_allowed(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition()
    question(definition, "trust_actions")["max_length"] = len(STORED_ANSWERS["trust_actions"])
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text


def test_put_removing_a_site_and_wave_without_responses_is_allowed(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any]
) -> None:
    definition = survey_definition()
    definition["sites"] = definition["sites"][:1]
    definition["waves"] = definition["waves"][:1]
    replaced = put(client, admin, definition)
    assert replaced.status_code == 200, replaced.text
    gone = client.post(RESPONSES, json={**submission(), "site": "site-2"}, headers=admin)
    assert_problem(gone, 422, ["site"])


def _remove_question(question_id: str) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        d["questions"] = [q for q in d["questions"] if q["id"] != question_id]

    return change


def _remove_option(question_id: str, value: str) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        q = question(d, question_id)
        q["options"] = [o for o in q["options"] if o["value"] != value]

    return change


def _update_question(question_id: str, **fields: Any) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        question(d, question_id).update(fields)

    return change


def _keep_only(key: str, keep_id: str) -> Callable[[Definition], None]:
    def change(d: Definition) -> None:
        d[key] = [item for item in d[key] if item["id"] == keep_id]

    return change


def _retype_cases(d: Definition) -> None:
    index = next(i for i, q in enumerate(d["questions"]) if q["id"] == "cases")
    d["questions"][index] = {"id": "cases", "type": "text", "text": "Cases"}


INVALIDATING: dict[str, Callable[[Definition], None]] = {
    "remove-an-answered-question": _remove_question("years"),
    "remove-an-answered-text-question": _remove_question("trust_actions"),
    "remove-a-chosen-option": _remove_option("role", "police"),
    "remove-a-chosen-multi-choice-option": _remove_option("agencies", "ngo"),
    "narrow-number-max-below-a-stored-value": _update_question("years", max=29),
    "raise-number-min-above-a-stored-value": _update_question("cases", min=4),
    "make-a-number-integer-under-a-fraction": _update_question("years", integer=True),
    "make-an-unanswered-question-required": _update_question("involved", required=True),
    "shrink-text-max-length-below-a-stored-text": _update_question("trust_actions", max_length=19),
    "remove-a-likert-point-answered": _update_question(
        "trust_confidence", scale=_scale(1, 2, 3, 5)
    ),
    "change-a-question-type": _retype_cases,
    "remove-a-site-with-responses": _keep_only("sites", "site-2"),
    "remove-a-wave-with-responses": _keep_only("waves", "final"),
}


@pytest.mark.parametrize("case", list(INVALIDATING))
def test_put_invalidating_a_stored_response_is_409(
    client: TestClient, admin: dict[str, str], answered: dict[str, Any], case: str
) -> None:
    if case == "make-a-number-integer-under-a-fraction":
        fractional = client.post(RESPONSES, json=submission(years=2.5), headers=admin)
        assert fractional.status_code == 201, fractional.text
    before_survey = client.get(SURVEY, headers=admin).json()
    before_responses = client.get(RESPONSES, headers=admin).json()
    definition = survey_definition()
    INVALIDATING[case](definition)
    response = put(client, admin, definition)
    assert_problem(response, 409)
    # Nothing changed: the definition, its version, and every stored response.
    assert client.get(SURVEY, headers=admin).json() == before_survey
    assert client.get(RESPONSES, headers=admin).json() == before_responses
    got = client.get(f"{RESPONSES}/{answered['id']}", headers=admin)
    assert got.status_code == 200
    assert got.json() == answered
    # ...and still valid: the same answers are accepted under the definition in force.
    again = client.post(
        RESPONSES,
        json={"site": "site-1", "wave": "midway", "answers": STORED_ANSWERS},
        headers=admin,
    )
    assert again.status_code == 201, again.text
    assert again.json()["answers"] == STORED_ANSWERS


@pytest.mark.parametrize("case", list(INVALIDATING))
def test_put_without_responses_may_make_any_change(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], case: str
) -> None:
    definition = survey_definition()
    INVALIDATING[case](definition)
    response = put(client, admin, definition)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2


def test_put_with_a_different_id_in_the_body_is_409(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = put(client, admin, survey_definition(id="other"))
    assert_problem(response, 409)
    assert client.get(SURVEY, headers=admin).json() == survey
    assert survey_ids(client, admin) == ["trust"]


def test_put_to_an_unknown_survey_is_404(client: TestClient, admin: dict[str, str]) -> None:
    response = client.put("/v1/surveys/nope", json=survey_definition(id="nope"), headers=admin)
    assert_problem(response, 404)
    assert survey_ids(client, admin) == []


def test_put_of_a_malformed_definition_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    definition = survey_definition()
    question(definition, "role")["options"] = []
    response = put(client, admin, definition)
    assert_problem(response, 422, ["questions", 0, "options"])
    assert client.get(SURVEY, headers=admin).json() == survey
