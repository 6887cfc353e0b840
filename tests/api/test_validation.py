"""Every validation rule of a live submission (contract §5), one test per rule.

Each rejection is checked from the outside: its status, a problem+json body whose
`errors` names the offending field by its path, and an empty list of stored responses.
"""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from tests.conftest import (
    PROBLEM_JSON,
    MakeKey,
    assert_problem,
    bearer,
    submission,
    survey_definition,
)

RESPONSES = "/v1/surveys/trust/responses"
ABSENT = object()


def assert_loc_prefix(response: httpx.Response, prefix: list[str | int]) -> None:
    """Some error of a 422 is at `prefix` or inside it (a list item of a field)."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].split(";")[0] == PROBLEM_JSON
    named = [error["loc"] for error in response.json()["errors"]]
    assert any(loc[: len(prefix)] == prefix for loc in named), f"{prefix} not among {named}"


def stored(client: TestClient, admin: dict[str, str], survey: str = "trust") -> list[Any]:
    listed = client.get(f"/v1/surveys/{survey}/responses", headers=admin)
    assert listed.status_code == 200, listed.text
    items: list[Any] = listed.json()["items"]
    return items


def assert_nothing_stored(client: TestClient, admin: dict[str, str], survey: str = "trust") -> None:
    assert stored(client, admin, survey) == []


def post(client: TestClient, admin: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    response: httpx.Response = client.post(RESPONSES, json=body, headers=admin)
    return response


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- the envelope: survey, site, wave, key --------------------------------------------


def test_unknown_survey_is_404(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = client.post("/v1/surveys/nope/responses", json=submission(), headers=admin)
    assert_problem(response, 404)
    assert_nothing_stored(client, admin)


def test_unknown_site_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, {**submission(), "site": "site-9"})
    assert_problem(response, 422, ["site"])
    assert_nothing_stored(client, admin)


def test_unknown_wave_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, {**submission(), "wave": "baseline"})
    assert_problem(response, 422, ["wave"])
    assert_nothing_stored(client, admin)


def test_site_outside_the_keys_sites_is_403(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> None:
    site_2 = bearer(make_key("submitter", sites=["site-2"]))
    response = client.post(RESPONSES, json=submission(), headers=site_2)
    assert_problem(response, 403)
    assert_nothing_stored(client, admin)
    # The same key may submit for its own site.
    own = client.post(RESPONSES, json={**submission(), "site": "site-2"}, headers=site_2)
    assert own.status_code == 201, own.text
    assert own.json()["site"] == "site-2"


def test_wave_not_open_now_is_409(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, {**submission(), "wave": "final"})
    assert_problem(response, 409)
    assert_nothing_stored(client, admin)


def test_submitted_at_more_than_five_minutes_ahead_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=6)
    response = post(client, admin, {**submission(), "submitted_at": iso(ahead)})
    assert_problem(response, 422, ["submitted_at"])
    assert_nothing_stored(client, admin)


def test_submitted_at_less_than_five_minutes_ahead_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    ahead = (datetime.now(UTC) + timedelta(minutes=4)).replace(microsecond=0)
    response = post(client, admin, {**submission(), "submitted_at": iso(ahead)})
    assert response.status_code == 201, response.text
    assert datetime.fromisoformat(response.json()["submitted_at"]) == ahead
    assert len(stored(client, admin)) == 1


def test_naive_submitted_at_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, {**submission(), "submitted_at": "2015-08-02T10:00:00"})
    assert_problem(response, 422, ["submitted_at"])
    assert_nothing_stored(client, admin)


# --- answers ------------------------------------------------------------------------


def test_unknown_question_id_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(favourite_colour="blue"))
    assert_problem(response, 422, ["answers", "favourite_colour"])
    assert_nothing_stored(client, admin)


@pytest.fixture
def required_survey(client: TestClient, admin: dict[str, str]) -> str:
    """A survey whose text and multi-choice questions are required too."""
    definition = survey_definition(id="strict")
    for question in definition["questions"]:
        if question["id"] in ("agencies", "trust_actions"):
            question["required"] = True
    response = client.post("/v1/surveys", json=definition, headers=admin)
    assert response.status_code == 201, response.text
    return "/v1/surveys/strict/responses"


def full_answers() -> dict[str, Any]:
    return {
        "role": "police",
        "agencies": ["school"],
        "trust_confidence": 3,
        "trust_actions": "Listen.",
    }


def test_required_survey_accepts_every_required_answer(
    client: TestClient, admin: dict[str, str], required_survey: str
) -> None:
    body = {"site": "site-1", "wave": "midway", "answers": full_answers()}
    response = client.post(required_survey, json=body, headers=admin)
    assert response.status_code == 201, response.text
    assert response.json()["answers"] == full_answers()


@pytest.mark.parametrize(
    ("question", "value"),
    [
        ("role", ABSENT),
        ("role", None),
        ("trust_confidence", ABSENT),
        ("trust_confidence", None),
        ("trust_actions", ABSENT),
        ("trust_actions", None),
        ("trust_actions", ""),
        ("trust_actions", "   "),
        ("trust_actions", "\t\n "),
        ("agencies", ABSENT),
        ("agencies", None),
        ("agencies", []),
    ],
    ids=[
        "choice-absent",
        "choice-null",
        "likert-absent",
        "likert-null",
        "text-absent",
        "text-null",
        "text-empty",
        "text-spaces",
        "text-whitespace",
        "multi-absent",
        "multi-null",
        "multi-empty",
    ],
)
def test_required_answer_missing_is_422(
    client: TestClient,
    admin: dict[str, str],
    required_survey: str,
    question: str,
    value: Any,
) -> None:
    answers = full_answers()
    if value is ABSENT:
        del answers[question]
    else:
        answers[question] = value
    body = {"site": "site-1", "wave": "midway", "answers": answers}
    response = client.post(required_survey, json=body, headers=admin)
    assert_problem(response, 422, ["answers", question])
    assert len(response.json()["errors"]) == 1, response.text
    assert_nothing_stored(client, admin, "strict")


@pytest.mark.parametrize("value", ["4", 4.0, True, 0, 6, -1, 3.5, [4]])
def test_likert_value_not_on_the_scale_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: Any
) -> None:
    response = post(client, admin, submission(trust_confidence=value))
    assert_problem(response, 422, ["answers", "trust_confidence"])
    assert_nothing_stored(client, admin)


@pytest.mark.parametrize("value", [1, 2, 3, 4, 5])
def test_likert_scale_values_are_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: int
) -> None:
    response = post(client, admin, submission(trust_confidence=value))
    assert response.status_code == 201, response.text
    answer = response.json()["answers"]["trust_confidence"]
    assert answer == value
    assert type(answer) is int
    (item,) = stored(client, admin)
    assert item["answers"]["trust_confidence"] == value


@pytest.mark.parametrize("value", ["teacher", "Police", 1, ["police"]])
def test_choice_not_an_option_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: Any
) -> None:
    response = post(client, admin, submission(role=value))
    assert_problem(response, 422, ["answers", "role"])
    assert_nothing_stored(client, admin)


def test_multi_choice_with_a_duplicate_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(agencies=["police", "school", "police"]))
    assert_loc_prefix(response, ["answers", "agencies"])
    assert_nothing_stored(client, admin)


def test_multi_choice_with_an_unknown_option_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(agencies=["police", "army"]))
    assert_loc_prefix(response, ["answers", "agencies"])
    assert_nothing_stored(client, admin)


def test_multi_choice_of_distinct_options_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(agencies=["ngo", "police"]))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["agencies"] == ["ngo", "police"]


@pytest.mark.parametrize(
    ("question", "value"),
    [("years", -1), ("years", 51), ("years", 50.5), ("years", -0.001), ("cases", -1)],
)
def test_number_outside_its_bounds_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], question: str, value: float
) -> None:
    response = post(client, admin, submission(**{question: value}))
    assert_problem(response, 422, ["answers", question])
    assert_nothing_stored(client, admin)


@pytest.mark.parametrize(("question", "value"), [("years", 0), ("years", 50), ("years", 12.5)])
def test_number_on_or_inside_its_bounds_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], question: str, value: float
) -> None:
    response = post(client, admin, submission(**{question: value}))
    assert response.status_code == 201, response.text
    assert response.json()["answers"][question] == value


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
def test_number_not_finite_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], literal: str
) -> None:
    body = json.dumps(submission(years=0)).replace('"years": 0', f'"years": {literal}')
    assert literal in body
    response = client.post(
        RESPONSES, content=body, headers={**admin, "Content-Type": "application/json"}
    )
    assert_problem(response, 422, ["answers", "years"])
    assert_nothing_stored(client, admin)


@pytest.mark.parametrize("value", [2.5, "2", True])
def test_integer_question_given_a_non_integer_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: Any
) -> None:
    response = post(client, admin, submission(cases=value))
    assert_problem(response, 422, ["answers", "cases"])
    assert_nothing_stored(client, admin)


def test_integer_question_given_an_integer_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(cases=12))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["cases"] == 12


@pytest.mark.parametrize("value", ["true", 1, 0, "yes"])
def test_boolean_given_a_non_boolean_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: Any
) -> None:
    response = post(client, admin, submission(involved=value))
    assert_problem(response, 422, ["answers", "involved"])
    assert_nothing_stored(client, admin)


@pytest.mark.parametrize("value", [True, False])
def test_boolean_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: bool
) -> None:
    response = post(client, admin, submission(involved=value))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["involved"] is value


def test_text_over_max_length_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(trust_actions="x" * 201))
    assert_problem(response, 422, ["answers", "trust_actions"])
    assert_nothing_stored(client, admin)


def test_text_of_exactly_max_length_is_accepted(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    text_200 = "é" * 100 + "x" * 100
    response = post(client, admin, submission(trust_actions=text_200))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["trust_actions"] == text_200
    (item,) = stored(client, admin)
    assert item["answers"]["trust_actions"] == text_200


@pytest.mark.parametrize("value", ["\u0000", "Listen\u0000.", "trailing\u0000"])
def test_text_holding_a_nul_is_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], value: str
) -> None:
    response = post(client, admin, submission(trust_actions=value))
    assert_problem(response, 422, ["answers", "trust_actions"])
    assert_nothing_stored(client, admin)


def test_text_is_stored_with_outer_whitespace_stripped(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(trust_actions="  \n\tListen,  then act.\n  "))
    assert response.status_code == 201, response.text
    assert response.json()["answers"]["trust_actions"] == "Listen,  then act."
    got = client.get(f"{RESPONSES}/{response.json()['id']}", headers=admin)
    assert got.status_code == 200
    assert got.json()["answers"]["trust_actions"] == "Listen,  then act."


def test_blank_answers_are_not_stored(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any], db_url: str
) -> None:
    blanks: dict[str, Any] = {
        "trust_actions": "   ",
        "agencies": [],
        "years": None,
        "involved": None,
    }
    response = post(client, admin, submission(**blanks))
    assert response.status_code == 201, response.text
    expected = {"role": "police", "trust_confidence": 4}
    assert response.json()["answers"] == expected
    got = client.get(f"{RESPONSES}/{response.json()['id']}", headers=admin)
    assert got.status_code == 200
    assert got.json()["answers"] == expected
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            questions = conn.execute(text("SELECT question_id FROM answer")).scalars().all()
    finally:
        engine.dispose()
    assert sorted(questions) == ["role", "trust_confidence"]


def test_empty_text_is_not_stored(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    response = post(client, admin, submission(trust_actions=""))
    assert response.status_code == 201, response.text
    assert "trust_actions" not in response.json()["answers"]
    got = client.get(f"{RESPONSES}/{response.json()['id']}", headers=admin)
    assert "trust_actions" not in got.json()["answers"]


def test_every_offending_field_is_named_at_once(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    body = {
        "site": "site-9",
        "wave": "midway",
        "answers": {"role": "teacher", "trust_confidence": 6, "years": 99, "nope": 1},
    }
    response = post(client, admin, body)
    assert_problem(
        response,
        422,
        ["site"],
        ["answers", "role"],
        ["answers", "trust_confidence"],
        ["answers", "years"],
        ["answers", "nope"],
    )
    assert_nothing_stored(client, admin)
