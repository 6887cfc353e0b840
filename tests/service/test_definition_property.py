"""Property: any definition the survey validator accepts compiles, and accepts a valid
submission generated from it (issue 10). No database: `SurveyDefinition` and
`compile_survey` are plain functions.

The generated definitions lean on the edges that broke before: number bounds anywhere
in the float range (±3.68e154 included) with `integer` on or off, scale values of any
size, and question ids drawn from pydantic's own attribute names as well as from the
slug pattern.
"""

import math
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.surveys import (
    BooleanQuestion,
    ChoiceQuestion,
    LikertQuestion,
    MultiChoiceQuestion,
    NumberQuestion,
    Question,
    SurveyDefinition,
    TextQuestion,
)
from service.validation import compile_survey

INTERNALS = ["model_config", "model_fields", "model_dump", "schema", "json", "dict", "copy"]
slugs = st.one_of(st.sampled_from(INTERNALS), st.from_regex(r"\A[a-z0-9][a-z0-9_-]{0,20}\Z"))
bounds = st.one_of(
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([-3.68e154, 3.68e154, 0.5, -0.5, 2.0**53, -(2.0**53), 2.0**53 + 2]),
    st.integers(-(2**60), 2**60),
)
labels = st.text(min_size=1, max_size=5)


def _options(draw: st.DrawFn) -> list[dict[str, Any]]:
    values = draw(st.lists(slugs, min_size=1, max_size=5, unique=True))
    return [{"value": v, "label": "x"} for v in values]


@st.composite
def question_dicts(draw: st.DrawFn, qid: str) -> dict[str, Any]:
    kind = draw(st.sampled_from(["choice", "multi_choice", "likert", "number", "boolean", "text"]))
    question: dict[str, Any] = {
        "id": qid,
        "type": kind,
        "text": "Q",
        "required": draw(st.booleans()),
    }
    if kind in ("choice", "multi_choice"):
        question["options"] = _options(draw)
    elif kind == "likert":
        points = draw(
            st.lists(
                st.one_of(st.integers(-10, 10), st.integers(-(2**70), 2**70)),
                min_size=2,
                max_size=11,
                unique=True,
            )
        )
        question["scale"] = [{"value": v, "label": "x"} for v in sorted(points)]
    elif kind == "number":
        question |= {"min": draw(bounds), "max": draw(bounds), "integer": draw(st.booleans())}
    elif kind == "text":
        question["max_length"] = draw(st.one_of(st.integers(-5, 20), st.integers(1, 200_000)))
    return question


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    ids = draw(st.lists(slugs, min_size=1, max_size=6, unique=True))
    return {
        "id": draw(slugs),
        "title": "T",
        "sites": [{"id": "site-1", "name": "S"}],
        "waves": [{"id": "w", "name": "W"}],
        "questions": [draw(question_dicts(qid)) for qid in ids],
    }


@st.composite
def valid_answer(draw: st.DrawFn, question: Question) -> Any:
    """A value the question must accept (non-blank, so a required question is answered)."""
    match question:
        case MultiChoiceQuestion():
            values = [o.value for o in question.options]
            return draw(st.lists(st.sampled_from(values), min_size=1, unique=True))
        case ChoiceQuestion():
            return draw(st.sampled_from([o.value for o in question.options]))
        case LikertQuestion():
            return draw(st.sampled_from([p.value for p in question.scale]))
        case NumberQuestion() if question.integer:
            first, last = question.integer_bounds()
            return draw(st.integers(first, last))
        case NumberQuestion():
            low = -math.inf if question.min is None else question.min
            high = math.inf if question.max is None else question.max
            return draw(st.floats(low, high, allow_nan=False, allow_infinity=False))
        case BooleanQuestion():
            return draw(st.booleans())
        case TextQuestion():
            # Outer whitespace is Unicode's White_Space (pydantic-core's trim), which
            # Python's str.strip() exceeds only by U+001C-U+001F: those are left out here,
            # and so are lone surrogates (Cs), which are no text and are rightly refused.
            chars = st.characters(
                exclude_categories=["Cs"], exclude_characters="\x00\x1c\x1d\x1e\x1f"
            )
            text = st.text(chars, min_size=1)
            return draw(text.filter(lambda t: 0 < len(t.strip()) <= question.max_length))
    raise AssertionError(question)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=definitions(), data=st.data())
def test_an_accepted_definition_compiles_and_accepts_a_valid_submission(
    raw: dict[str, Any], data: st.DataObject
) -> None:
    try:
        definition = SurveyDefinition.model_validate(raw)
    except ValidationError:
        assume(False)
        raise
    compiled = compile_survey(definition, 1)  # must not raise for an accepted definition

    answers: dict[str, Any] = {}
    for question in definition.questions:
        if question.required or data.draw(st.booleans()):
            answers[question.id] = data.draw(valid_answer(question))
    cleaned, problems = compiled.validate_answers(answers)
    assert problems == []
    expected = {q: v.strip() if isinstance(v, str) else v for q, v in answers.items()}
    assert cleaned == expected


@settings(max_examples=100, deadline=None)
@given(raw=definitions())
def test_an_accepted_definition_refuses_unknown_question_ids(raw: dict[str, Any]) -> None:
    try:
        definition = SurveyDefinition.model_validate(raw)
    except ValidationError:
        assume(False)
        raise
    compiled = compile_survey(definition, 1)
    unknown = "zz-not-a-question"
    assume(unknown not in compiled.questions)
    _, problems = compiled.validate_answers({unknown: 1})
    assert ("answers", unknown) in [p.loc for p in problems]
