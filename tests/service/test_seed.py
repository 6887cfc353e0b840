"""The seed study reproduces Lefevre et al. (2017), Tables 1-3, exactly.

The expected figures below are copied by hand from the paper, not from the generator.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from service.seed import dataset
from service.seed.dataset import SeedResponse, generate_responses, load_codebook, load_survey

SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
RSQ = "\u2019"  # the paper's right single quotation mark
LSQ = "\u2018"

# Table 1: Professional roles of survey participants (n=204).
TABLE_1 = [
    ("la_social_work", "Local authority social work", 46),
    ("police", "Police", 38),
    ("youth_interventions", "Youth interventions: services, support, and youth offending", 24),
    ("education", "Education", 19),
    ("health", "Health services", 18),
    ("family_support", "Family support services, including early intervention/early help", 15),
    ("senior_management", "Senior management in the local authority", 10),
    ("other", "Other", 34),
]

# Table 2: How confident participants felt in enabling a child to trust them enough to
# disclose CSE (n=204).
TABLE_2 = [
    (1, "Not confident", 17),
    (2, "Somewhat unconfident", 53),
    (3, "Neither confident or unconfident", 53),
    (4, "Confident", 73),
    (5, "Very confident", 8),
]

# Table 3: Factors which survey respondents cited as encouraging children at risk of CSE to
# trust them (number of respondents providing material relating to each category).
TABLE_3 = [
    (
        "Relationship-based practice",
        147,
        [
            ("Building a good rapport/engagement/relationship", 28),
            ("Spending time with children", 26),
            ("A relationship developed over time", 22),
            (f"{LSQ}Being{RSQ} qualities/use of self", 20),
            ("A relationship which feels safe", 19),
            ("A supportive relationship which builds confidence and resilience", 16),
            ("A real relationship, where children feel that they are cared about", 10),
            ("Being available to children", 6),
        ],
    ),
    (
        "Child-centred practice",
        121,
        [
            (f"Listening and taking children{RSQ}s concerns seriously", 43),
            ("Child-led", 18),
            (f"Going at the child{RSQ}s pace", 17),
            ("A safe, comfortable environment", 15),
            ("Empathic", 10),
            ("Providing clear and age-appropriate information and explanations", 9),
            ("Child-centred communication skills", 9),
        ],
    ),
    (
        "An ethically-grounded approach",
        143,
        [
            ("Non-judgemental", 41),
            ("Being open, honest, clear and direct", 35),
            ("Being reliable, persistent and consistent", 24),
            ("Believing the child", 9),
            ("Having and demonstrating appropriate and clear boundaries", 8),
            ("Reassuring children about where the fault lies", 8),
            ("Attending to confidentiality", 6),
            ("Showing trust in the child", 4),
            ("Being respectful", 4),
            ("Being fair", 3),
            (f"Promoting children{RSQ}s rights", 1),
        ],
    ),
    (
        "Being skilled and knowledgeable in relation to working with CSE",
        21,
        [
            ("Instilling confidence in the child about your competence in working with CSE", 13),
            ("Demonstrating your understanding of particular dynamics of CSE", 8),
        ],
    ),
]

MIDWAY_OPENS = datetime(2015, 7, 1, tzinfo=UTC)
MIDWAY_CLOSES = datetime(2015, 10, 31, 23, 59, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def survey() -> dict[str, Any]:
    return load_survey()


@pytest.fixture(scope="module")
def codebook() -> dict[str, Any]:
    return load_codebook()


@pytest.fixture(scope="module")
def responses() -> list[SeedResponse]:
    return generate_responses()


def _questions(survey: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["id"]: q for q in survey["questions"]}


def _categories(codebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for theme in codebook["themes"] for c in theme["categories"]]


def _count(responses: list[SeedResponse], question: str) -> Counter[Any]:
    return Counter(r.answers[question] for r in responses if question in r.answers)


def _has_keyword(text: str, keywords: list[str]) -> bool:
    """A keyword matches at the start of a word: "listen" finds "Listening", "listened"."""
    lowered = text.lower()
    return any(re.search(r"(?<![a-z0-9])" + re.escape(k), lowered) for k in keywords)


def _percent(count: int, base: int) -> float:
    """Half-up to one decimal, as the paper and CONTRACT §1 round."""
    return math.floor(count * 1000 / base + 0.5) / 10


# --- the survey definition ---------------------------------------------------------------


def test_survey_identity_sites_and_waves(survey: dict[str, Any]) -> None:
    assert survey["id"] == "smhm-professionals"
    assert survey["title"]
    assert survey["sites"] == [
        {"id": "site-1", "name": "Site 1"},
        {"id": "site-2", "name": "Site 2"},
        {"id": "site-3", "name": "Site 3"},
    ]
    assert survey["waves"] == [
        {
            "id": "midway",
            "name": "Mid-stage survey",
            "opens_at": "2015-07-01T00:00:00Z",
            "closes_at": "2015-10-31T23:59:59Z",
        },
        {
            "id": "final",
            "name": "Final survey",
            "opens_at": "2016-07-01T00:00:00Z",
            "closes_at": "2016-10-31T23:59:59Z",
        },
    ]


def test_survey_questions(survey: dict[str, Any]) -> None:
    questions = _questions(survey)
    assert list(questions) == [
        "role",
        "gender",
        "age_band",
        "ethnicity",
        "years_in_post",
        "cse_case_involvement",
        "trust_confidence",
        "trust_actions",
    ]
    types = {qid: q["type"] for qid, q in questions.items()}
    assert types == {
        "role": "choice",
        "gender": "choice",
        "age_band": "choice",
        "ethnicity": "choice",
        "years_in_post": "number",
        "cse_case_involvement": "boolean",
        "trust_confidence": "likert",
        "trust_actions": "text",
    }
    required = {qid for qid, q in questions.items() if q["required"]}
    assert required == {"role", "trust_confidence"}
    for q in questions.values():
        texts = q["text"].values() if isinstance(q["text"], dict) else [q["text"]]
        assert all(isinstance(t, str) and t for t in texts)

    role = questions["role"]
    assert [(o["value"], o["label"]) for o in role["options"]] == [
        (value, label) for value, label, _ in TABLE_1
    ]
    assert [o["value"] for o in questions["gender"]["options"]] == [
        "female",
        "male",
        "other",
        "prefer_not_to_say",
    ]
    assert [o["value"] for o in questions["age_band"]["options"]] == [
        "under_25",
        "25_34",
        "35_44",
        "45_54",
        "55_plus",
    ]
    ethnicity = {o["value"] for o in questions["ethnicity"]["options"]}
    assert {
        "white_british",
        "white_irish",
        "white_other",
        "black_caribbean",
        "mixed_white_black_caribbean",
    } <= ethnicity
    assert len(ethnicity) > 5

    years = questions["years_in_post"]
    assert (years["min"], years["max"], years["integer"]) == (0, 50, False)

    assert questions["cse_case_involvement"]["text"] == (
        "Have you been directly involved in a case where a child was identified as "
        "experiencing, or at risk of, CSE?"
    )

    likert = questions["trust_confidence"]
    assert survey["languages"] == ["en", "cy"]
    assert "confident" in likert["text"]["en"]
    assert likert["text"]["en"].endswith("?")
    assert likert["text"]["cy"].startswith("Pa mor hyderus")
    assert [(s["value"], s["label"]["en"]) for s in likert["scale"]] == [
        (value, label) for value, label, _ in TABLE_2
    ]
    assert [s["label"]["cy"] for s in likert["scale"]] == [
        "Dim yn hyderus",
        "Braidd yn ddihyder",
        "Na hyderus na dihyder",
        "Hyderus",
        "Hyderus iawn",
    ]

    text = questions["trust_actions"]
    assert text["max_length"] == 4000
    assert text["text"] == (
        "What do you think you need to do to enable a child experiencing or at risk of CSE "
        "to trust you enough to tell you what is happening to them?"
    )


def test_survey_ids_are_slugs_and_unique(survey: dict[str, Any]) -> None:
    ids = [survey["id"]]
    ids += [s["id"] for s in survey["sites"]]
    ids += [w["id"] for w in survey["waves"]]
    ids += [q["id"] for q in survey["questions"]]
    for group in (survey["sites"], survey["waves"], survey["questions"]):
        assert len({item["id"] for item in group}) == len(group)
    for q in survey["questions"]:
        if "options" in q:
            values = [o["value"] for o in q["options"]]
            assert values
            assert len(set(values)) == len(values)
            ids += values
            assert all(o["label"] for o in q["options"])
    for slug in ids:
        assert SLUG.match(slug), slug


# --- the codebook -------------------------------------------------------------------------


def test_codebook_follows_table_3(codebook: dict[str, Any]) -> None:
    assert codebook["question"] == "trust_actions"
    themes = codebook["themes"]
    assert len(themes) == 4
    assert [t["label"] for t in themes] == [label for label, _, _ in TABLE_3]
    for theme, (_, _, categories) in zip(themes, TABLE_3, strict=True):
        assert [c["label"] for c in theme["categories"]] == [label for label, _ in categories]
    assert len(_categories(codebook)) == 28
    assert [t["id"] for t in themes] == ["relationship", "child_centred", "ethical", "skilled"]
    assert {t["domain"] for t in themes} <= {"knowing", "being", "doing"}
    assert themes[3]["domain"] == "knowing"
    assert themes[2]["domain"] == "being"
    assert themes[1]["domain"] == "doing"


def test_table_3_theme_totals_are_the_sums_of_their_categories() -> None:
    for _, total, categories in TABLE_3:
        assert sum(n for _, n in categories) == total
    assert [total for _, total, _ in TABLE_3] == [147, 121, 143, 21]


def test_codebook_categories_are_well_formed(codebook: dict[str, Any]) -> None:
    categories = _categories(codebook)
    ids = [t["id"] for t in codebook["themes"]] + [c["id"] for c in categories]
    for slug in ids:
        assert SLUG.match(slug), slug
    assert len({c["id"] for c in categories}) == 28
    for c in categories:
        assert c["origin"] in {"deductive", "inductive"}
        assert isinstance(c["description"], str)
        assert c["description"].endswith(".")
        assert 2 <= len(c["keywords"]) <= 8
        for keyword in c["keywords"]:
            assert keyword == keyword.lower()
            assert keyword.strip() == keyword
            assert keyword
    origins = {c["label"]: c["origin"] for c in categories}
    assert origins["Reassuring children about where the fault lies"] == "inductive"
    assert (
        origins["Instilling confidence in the child about your competence in working with CSE"]
        == "inductive"
    )
    assert origins["Demonstrating your understanding of particular dynamics of CSE"] == "inductive"
    assert origins["Non-judgemental"] == "deductive"
    assert origins[f"Listening and taking children{RSQ}s concerns seriously"] == "deductive"


def test_phrase_bank_covers_every_category_with_its_keywords(codebook: dict[str, Any]) -> None:
    keywords = {c["id"]: c["keywords"] for c in _categories(codebook)}
    assert set(dataset.PHRASES) == set(keywords)
    for category, phrasing in dataset.PHRASES.items():
        assert len(phrasing.fragments) >= 2
        assert len(phrasing.clauses) >= 3
        assert len(phrasing.sentences) >= 2
        assert len(set(phrasing.all())) >= 3
        for phrase in phrasing.all():
            assert _has_keyword(phrase, keywords[category]), (category, phrase)
    every_keyword = [k for ks in keywords.values() for k in ks]
    for filler in (*dataset.PREAMBLES, *dataset.CLOSERS, *(o for o, _, _ in dataset.OPENERS)):
        assert not _has_keyword(filler, every_keyword), filler


# --- the generated responses -------------------------------------------------------------


def test_two_calls_give_the_same_responses(responses: list[SeedResponse]) -> None:
    again = generate_responses()
    assert again == responses
    assert [r.answers for r in again] == [r.answers for r in responses]


def test_generation_does_not_touch_the_global_random_state() -> None:
    import random

    random.seed(1)
    expected = random.random()
    random.seed(1)
    generate_responses()
    assert random.random() == expected


def test_204_midway_responses_across_three_sites(responses: list[SeedResponse]) -> None:
    assert len(responses) == 204
    assert {r.wave for r in responses} == {"midway"}
    sites = Counter(r.site for r in responses)
    assert set(sites) == {"site-1", "site-2", "site-3"}
    assert sum(sites.values()) == 204
    assert min(sites.values()) >= 30


def test_submitted_at_lies_in_the_midway_window(responses: list[SeedResponse]) -> None:
    for r in responses:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.submitted_at)
        moment = datetime.fromisoformat(r.submitted_at.replace("Z", "+00:00"))
        assert MIDWAY_OPENS <= moment <= MIDWAY_CLOSES


def test_table_1_role_counts(responses: list[SeedResponse]) -> None:
    roles = _count(responses, "role")
    assert [roles[value] for value, _, _ in TABLE_1] == [46, 38, 24, 19, 18, 15, 10, 34]
    assert sum(roles.values()) == 204
    assert [_percent(roles[value], 204) for value, _, _ in TABLE_1] == [
        22.5,
        18.6,
        11.8,
        9.3,
        8.8,
        7.4,
        4.9,
        16.7,
    ]


def test_table_2_likert_counts(responses: list[SeedResponse]) -> None:
    likert = _count(responses, "trust_confidence")
    assert [likert[value] for value, _, _ in TABLE_2] == [17, 53, 53, 73, 8]
    assert sum(likert.values()) == 204
    assert [_percent(likert[value], 204) for value, _, _ in TABLE_2] == [
        8.3,
        26.0,
        26.0,
        35.8,
        3.9,
    ]
    for r in responses:
        value = r.answers["trust_confidence"]
        assert type(value) is int
        assert 1 <= value <= 5


def test_two_blank_open_answers(responses: list[SeedResponse]) -> None:
    blank = [r for r in responses if "trust_actions" not in r.answers]
    assert len(blank) == 2
    assert all(r.categories == () for r in blank)
    answered = [r for r in responses if "trust_actions" in r.answers]
    assert len(answered) == 202
    for r in answered:
        text = r.answers["trust_actions"]
        assert isinstance(text, str)
        assert text.strip() == text
        assert text
        assert len(text) < 4000
        assert "\x00" not in text
        assert r.categories


def test_table_3_category_counts(responses: list[SeedResponse], codebook: dict[str, Any]) -> None:
    by_label = {c["id"]: c["label"] for c in _categories(codebook)}
    mentions = Counter(c for r in responses for c in r.categories)
    for r in responses:
        assert len(set(r.categories)) == len(r.categories)
    counted = [(by_label[c["id"]], mentions[c["id"]]) for c in _categories(codebook)]
    assert counted == [category for _, _, categories in TABLE_3 for category in categories]
    assert [n for _, n in counted] == [
        28, 26, 22, 20, 19, 16, 10, 6,
        43, 18, 17, 15, 10, 9, 9,
        41, 35, 24, 9, 8, 8, 6, 4, 4, 3, 1,
        13, 8,
    ]  # fmt: skip
    themes = [sum(mentions[c["id"]] for c in t["categories"]) for t in codebook["themes"]]
    assert themes == [147, 121, 143, 21]
    assert sum(themes) == 432


def test_categories_are_in_codebook_order(
    responses: list[SeedResponse], codebook: dict[str, Any]
) -> None:
    order = [c["id"] for c in _categories(codebook)]
    for r in responses:
        assert list(r.categories) == sorted(r.categories, key=order.index)


def test_answers_fit_the_survey(responses: list[SeedResponse], survey: dict[str, Any]) -> None:
    questions = _questions(survey)
    for r in responses:
        assert set(r.answers) <= set(questions)
        for qid, q in questions.items():
            if q["required"]:
                assert qid in r.answers
        for qid, value in r.answers.items():
            q = questions[qid]
            if q["type"] == "choice":
                assert value in {o["value"] for o in q["options"]}, (qid, value)
            elif q["type"] == "likert":
                assert type(value) is int
                assert value in {s["value"] for s in q["scale"]}
            elif q["type"] == "number":
                assert type(value) is float
                assert math.isfinite(value)
                assert q["min"] <= value <= q["max"]
            elif q["type"] == "boolean":
                assert type(value) is bool
            else:
                assert q["type"] == "text"
                assert isinstance(value, str)
                assert len(value) <= q["max_length"]
        submission = r.as_submission()
        assert submission == {
            "site": r.site,
            "wave": r.wave,
            "submitted_at": r.submitted_at,
            "answers": r.answers,
        }


def test_every_category_is_findable_by_its_keywords(
    responses: list[SeedResponse], codebook: dict[str, Any]
) -> None:
    keywords = {c["id"]: c["keywords"] for c in _categories(codebook)}
    for r in responses:
        for category in r.categories:
            assert _has_keyword(r.answers["trust_actions"], keywords[category]), (
                category,
                r.answers["trust_actions"],
            )


def test_answers_vary(responses: list[SeedResponse]) -> None:
    texts = [r.answers["trust_actions"] for r in responses if "trust_actions" in r.answers]
    assert len(set(texts)) > 150
    assert "Listen." in texts  # the paper's example of a one-word answer
    sizes = Counter(len(r.categories) for r in responses if r.categories)
    assert sizes[1] > 0
    assert max(sizes) >= 4
    assert any(len(t.split()) <= 2 for t in texts)
    assert any(len(t.split()) >= 30 for t in texts)


def test_gender(responses: list[SeedResponse]) -> None:
    gender = _count(responses, "gender")
    answered = sum(gender.values())
    assert answered == 203
    assert gender["female"] == 149
    assert _percent(gender["female"], answered) == 73.4


def test_age_band(responses: list[SeedResponse]) -> None:
    ages = _count(responses, "age_band")
    middle = ages["35_44"] + ages["45_54"]
    assert middle == 122
    assert round(middle / 204 * 100) == 60


def test_ethnicity(responses: list[SeedResponse]) -> None:
    ethnicity = _count(responses, "ethnicity")
    assert ethnicity["white_irish"] == 4
    assert ethnicity["white_other"] == 8
    assert ethnicity["black_caribbean"] == 8
    assert ethnicity["mixed_white_black_caribbean"] == 5
    assert ethnicity["white_british"] / 204 > 0.8
    others = set(ethnicity) - {
        "white_british",
        "white_irish",
        "white_other",
        "black_caribbean",
        "mixed_white_black_caribbean",
    }
    assert others
    # the paper's named groups are the "larger" ones besides White British
    assert all(ethnicity[value] < 4 for value in others)


def test_years_in_post(responses: list[SeedResponse]) -> None:
    years = [r.answers["years_in_post"] for r in responses if "years_in_post" in r.answers]
    assert years
    assert all(0.1 <= y <= 25 for y in years)
    assert min(years) == pytest.approx(0.1)  # "a few weeks"
    assert max(years) == pytest.approx(25)


def test_cse_case_involvement(responses: list[SeedResponse]) -> None:
    involvement = _count(responses, "cse_case_involvement")
    assert involvement[True] == 122
    assert round(involvement[True] / 204 * 100) == 60
