"""Keyword suggestions (issue 4, part 5): the matcher alone, and on the seed study's texts."""

from typing import Any

import pytest

from schemas.codebooks import CodebookIn, ThemeIn
from service.coding.suggestions import Matcher
from service.seed import dataset
from service.seed.dataset import generate_responses, load_codebook


def themes(**keywords: list[str]) -> list[ThemeIn]:
    """One theme per two categories, in the order given, each with its keywords."""
    categories = [
        {"id": cid, "label": cid.title(), "keywords": words} for cid, words in keywords.items()
    ]
    return [
        ThemeIn.model_validate(
            {"id": f"t{i // 2}", "label": "T", "categories": categories[i : i + 2]}
        )
        for i in range(0, len(categories), 2)
    ]


def found(text: str, **keywords: list[str]) -> dict[str, list[str]]:
    """category -> the texts of its spans."""
    return {
        s.category: [span.text for span in s.spans]
        for s in Matcher(themes(**keywords)).suggest(text)
    }


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("Listen.", "Listen"),
        ("listening to them", "listening"),
        ("They LISTENED", "LISTENED"),
        ("she listens", "listens"),
    ],
)
def test_inflections_and_case_do_not_matter(text: str, word: str) -> None:
    assert found(text, listening=["listen"]) == {"listening": [word]}
    assert found(text, listening=["Listening"]) == {"listening": [word]}


def test_what_matches_is_the_word_in_the_answer() -> None:
    text = "Relationships matter; a relationship of trust. They listened, and listen."
    suggestions = Matcher(themes(rapport=["relationship"], listening=["listen"])).suggest(text)
    assert [s.category for s in suggestions] == ["rapport", "listening"]
    for s in suggestions:
        for span in s.spans:
            assert text[span.start : span.end] == span.text
    assert [sp.text for sp in suggestions[0].spans] == ["Relationships", "relationship"]
    assert [sp.text for sp in suggestions[1].spans] == ["listened", "listen"]
    assert suggestions[0].theme == "t0"
    assert suggestions[0].label == "Rapport"


def test_a_word_that_only_begins_like_a_keyword_does_not_match() -> None:
    assert found("my heart, the hearth", listening=["hear"]) == {}
    assert found("a career in social work", cared=["care"]) == {}
    assert found("Hear them", listening=["hear"]) == {"listening": ["Hear"]}


@pytest.mark.parametrize(
    ("text", "spans"),
    [
        ("a long-term plan", ["long-term"]),
        ("a long term plan", ["long term"]),
        ("LONG\u2013TERM work", ["LONG\u2013TERM"]),
        ("it was long. Term after term", []),
        ("term long", []),
        ("long, term", []),
        ("a long-lasting term", []),
    ],
)
def test_a_keyword_of_several_words_matches_them_as_a_phrase(text: str, spans: list[str]) -> None:
    assert found(text, over_time=["long-term"]).get("over_time", []) == spans


def test_a_star_keeps_any_ending() -> None:
    assert found("resilience; resilient; resilin", supportive=["resilien*"]) == {
        "supportive": ["resilience", "resilient"]
    }


def test_curly_apostrophes_are_apostrophes() -> None:
    text = "Children\u2019s rights, and children's rights"
    assert found(text, rights=["children's rights"]) == {
        "rights": ["Children\u2019s rights", "children's rights"]
    }


def test_offsets_count_code_points_after_non_ascii_text() -> None:
    text = "Café 😀 \u2014 \u2018listen\u2019"
    (suggestion,) = Matcher(themes(listening=["listen"])).suggest(text)
    (span,) = suggestion.spans
    assert (span.start, span.end, span.text) == (
        text.index("listen"),
        text.index("listen") + 6,
        "listen",
    )


def test_categories_keywords_and_spans_are_ordered_and_distinct() -> None:
    text = "Listening. They need time. Listen!"
    suggestions = Matcher(
        themes(time=["time"], listening=["listening", "listen", "hear"], none=["kindness"])
    ).suggest(text)
    assert [s.category for s in suggestions] == ["time", "listening"]
    listening = suggestions[1]
    assert listening.keywords == ["listening", "listen"]  # codebook order, each once
    assert [(s.start, s.end) for s in listening.spans] == [(0, 9), (27, 33)]


def test_nothing_to_suggest() -> None:
    matcher = Matcher(themes(listening=["listen"], odd=["!!!"]))
    assert matcher.suggest("") == []
    assert matcher.suggest("   ") == []
    assert matcher.suggest("!!!") == []
    assert matcher.suggest("Be kind.") == []


# --- the seed study ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_matcher() -> Matcher:
    return Matcher(CodebookIn.model_validate(load_codebook()).themes)


def _fill(phrase: str) -> str:
    return phrase.replace("{me}", "me").replace("{my}", "my")


def test_every_category_of_the_seed_codebook_has_keywords() -> None:
    codebook: dict[str, Any] = load_codebook()
    for theme in codebook["themes"]:
        for category in theme["categories"]:
            assert len(category["keywords"]) >= 2, category["id"]


def test_every_seed_phrasing_suggests_its_own_category(seed_matcher: Matcher) -> None:
    for category, phrasing in dataset.PHRASES.items():
        for phrase in phrasing.all():
            suggested = [s.category for s in seed_matcher.suggest(_fill(phrase))]
            assert category in suggested, (category, phrase)


def test_seed_fillers_suggest_nothing(seed_matcher: Matcher) -> None:
    fillers = (*dataset.PREAMBLES, *dataset.CLOSERS, *(o for o, _, _ in dataset.OPENERS))
    for filler in fillers:
        assert seed_matcher.suggest(filler) == [], filler


def test_seed_answers_get_suggestions_for_their_own_categories(seed_matcher: Matcher) -> None:
    coded = [r for r in generate_responses() if r.categories]
    assert len(coded) == 202
    all_found = some_found = 0
    for r in coded:
        suggested = {s.category for s in seed_matcher.suggest(r.answers["trust_actions"])}
        some_found += bool(suggested & set(r.categories))
        all_found += set(r.categories) <= suggested
    assert some_found == len(coded)
    assert all_found == len(coded)
