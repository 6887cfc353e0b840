"""Localised text (schemas/texts.py), the one home of texts in several languages: which
objects a definition accepts, in what order they are kept, and how a text resolves."""

from typing import Any

import pytest
from pydantic import ValidationError

from schemas.codebooks import CodebookIn
from schemas.surveys import SurveyDefinition
from schemas.texts import language_problems, localise, phrase, resolve, valid_tag
from service.releases.labels import relabel
from tests.conftest import survey_definition


def test_resolve_gives_the_language_asked_for_else_the_default() -> None:
    text = {"en": "Very confident", "cy": "Hyderus iawn"}
    assert resolve(text, "cy") == "Hyderus iawn"
    assert resolve(text, "en") == "Very confident"
    assert resolve(text) == "Very confident"
    assert resolve("Site 1", "cy") == "Site 1"  # a plain string is the same in every language


@pytest.mark.parametrize(
    ("tag", "valid"),
    [("en", True), ("cy", True), ("en-GB", True), ("cy-GB", True), ("zh-Hant-TW", True)],
)
def test_valid_tags_are_accepted(tag: str, valid: bool) -> None:
    assert valid_tag(tag) is valid


@pytest.mark.parametrize("tag", ["", "english", "en_GB", "e", "not a tag", "en--GB", "123", " en"])
def test_malformed_tags_are_refused(tag: str) -> None:
    assert not valid_tag(tag)


def test_objects_are_kept_in_the_order_of_the_declared_languages() -> None:
    raw = survey_definition(languages=["cy", "en"], title={"en": "Survey", "cy": "Arolwg"})
    definition = SurveyDefinition.model_validate(raw)
    assert list(definition.title) == ["cy", "en"]
    assert resolve(definition.title) == "Arolwg"
    assert definition.language(None) == "cy"
    assert definition.undeclared("fr") is not None
    assert definition.undeclared("en") is None


def test_localise_turns_every_text_into_a_plain_string() -> None:
    raw = survey_definition(languages=["en", "cy"], title={"en": "Survey", "cy": "Arolwg"})
    raw["questions"][2]["scale"][0]["label"] = {"en": "Not confident", "cy": "Dim yn hyderus"}
    definition = SurveyDefinition.model_validate(raw)
    welsh = localise(definition, "cy")
    assert welsh.title == "Arolwg"
    assert welsh.questions[2].scale[0].label == "Dim yn hyderus"  # type: ignore[union-attr]
    assert definition.title == {"en": "Survey", "cy": "Arolwg"}  # the original is untouched


def test_a_definition_error_names_every_offending_text_at_once() -> None:
    raw = survey_definition(languages=["en", "cy"], title={"en": "Survey"})
    raw["sites"][1]["name"] = {"en": "Site 2", "cy": "Safle 2", "ga": "Suíomh 2"}
    with pytest.raises(ValidationError) as caught:
        SurveyDefinition.model_validate(raw)
    locs = {tuple(e["loc"]) for e in caught.value.errors()}
    assert locs == {("title",), ("sites", 1, "name", "ga")}


def test_codebook_language_problems_are_named_by_path() -> None:
    codebook = CodebookIn.model_validate(
        {"themes": [{"id": "t", "label": {"en": "Theme"}, "categories": []}]}
    )
    assert language_problems(codebook, ["en", "cy"]) == [
        (("themes", 0, "label"), "missing language 'cy'")
    ]
    assert language_problems(codebook, None)[0][0] == ("themes", 0, "label")
    assert language_problems(codebook, ["en"]) == []


def test_hearmes_own_phrases_follow_the_primary_language() -> None:
    assert phrase("Yes", "cy") == "Ie"
    assert phrase("Yes", "cy-GB") == "Ie"
    assert phrase("Yes", "fr") == "Yes"
    assert phrase("Yes", None) == "Yes"


def test_relabel_changes_labels_and_nothing_else() -> None:
    table: dict[str, Any] = {
        "kind": "likert",
        "n": 9,
        "rows": [{"value": 1, "label": "Not confident", "count": None, "percent": None}],
        "groups": [
            {
                "value": "site-1",
                "label": "Site 1",
                "n": 9,
                "rows": [{"value": 1, "label": "Not confident", "count": 9}],
            }
        ],
    }
    labels = {"rows": {"1": "Dim yn hyderus"}, "groups": {'"site-1"': "Safle 1"}}
    welsh = relabel(table, labels)
    assert welsh["rows"][0] == {
        "value": 1,
        "label": "Dim yn hyderus",
        "count": None,
        "percent": None,
    }
    assert welsh["groups"][0]["label"] == "Safle 1"
    assert welsh["groups"][0]["rows"][0] == {"value": 1, "label": "Dim yn hyderus", "count": 9}
    assert table["rows"][0]["label"] == "Not confident"  # the stored table is untouched
    assert relabel(table, None) is table


@pytest.mark.parametrize(
    ("title", "loc"),
    [
        ("\ud800", ("title",)),  # a lone surrogate: no text a database can store
        ({"en": "\ud800"}, ("title", "en")),
        ("", ("title",)),
        ("x" * 501, ("title",)),
        ({"en": ""}, ("title", "en")),
        (5, ("title",)),
        ({}, ("title",)),
    ],
)
def test_each_string_is_checked_as_a_plain_string_field_is(
    title: object, loc: tuple[str, ...]
) -> None:
    raw = survey_definition(languages=["en"], title=title)
    with pytest.raises(ValidationError) as caught:
        SurveyDefinition.model_validate(raw)
    assert [tuple(e["loc"]) for e in caught.value.errors()] == [loc]
