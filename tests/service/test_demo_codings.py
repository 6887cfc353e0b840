"""The demo's double coding reproduces the paper's Table 3 through the effective sets.

The expected figures are typed in from Lefevre et al. (2017), Table 3, not taken from the
seed module; they are checked by SQL over `effective_category` joined to the codebook.
"""

from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from schemas.keys import Role
from service.coding.codebooks import categories_in_use
from service.coding.pairs import coder_agreement, discrepancies
from service.database import Database
from service.demo import load_demo
from service.keys import Principal

SURVEY = "smhm-professionals"
QUESTION = "trust_actions"
RSQ = "\u2019"
LSQ = "\u2018"
ADMIN = Principal(key_id=0, name="test-admin", role=Role.admin, sites=None)

# Table 3: number of respondents providing material relating to each category.
CATEGORIES = {
    "Building a good rapport/engagement/relationship": 28,
    "Spending time with children": 26,
    "A relationship developed over time": 22,
    f"{LSQ}Being{RSQ} qualities/use of self": 20,
    "A relationship which feels safe": 19,
    "A supportive relationship which builds confidence and resilience": 16,
    "A real relationship, where children feel that they are cared about": 10,
    "Being available to children": 6,
    f"Listening and taking children{RSQ}s concerns seriously": 43,
    "Child-led": 18,
    f"Going at the child{RSQ}s pace": 17,
    "A safe, comfortable environment": 15,
    "Empathic": 10,
    "Providing clear and age-appropriate information and explanations": 9,
    "Child-centred communication skills": 9,
    "Non-judgemental": 41,
    "Being open, honest, clear and direct": 35,
    "Being reliable, persistent and consistent": 24,
    "Believing the child": 9,
    "Having and demonstrating appropriate and clear boundaries": 8,
    "Reassuring children about where the fault lies": 8,
    "Attending to confidentiality": 6,
    "Showing trust in the child": 4,
    "Being respectful": 4,
    "Being fair": 3,
    f"Promoting children{RSQ}s rights": 1,
    "Instilling confidence in the child about your competence in working with CSE": 13,
    "Demonstrating your understanding of particular dynamics of CSE": 8,
}
# Table 3's theme totals ("147 total", ...): the sums of their categories' respondents.
THEMES = {
    "Relationship-based practice": 147,
    "Child-centred practice": 121,
    "An ethically-grounded approach": 143,
    "Being skilled and knowledgeable in relation to working with CSE": 21,
}
ANSWERED = 202  # "all but two respondents" of 204

EFFECTIVE = """
    FROM effective_category ec
    JOIN codebook cb ON cb.survey_id = ec.survey_id AND cb.question_id = ec.question_id
    JOIN codebook_category cc ON cc.codebook_id = cb.id AND cc.category_id = ec.category_id
"""


def _counts(session: Session, sql: str) -> dict[Any, int]:
    rows = session.connection().execute(text(sql), {"survey": SURVEY, "question": QUESTION})
    return {value: count for value, count in rows}


@pytest.fixture
def demo(database: Database) -> Database:
    with database.session() as session:
        assert load_demo(session) == (SURVEY, 204)
    return database


def test_effective_sets_reproduce_table_3(demo: Database) -> None:
    with demo.session(write=False) as session:
        categories = _counts(
            session,
            f"SELECT cc.label, COUNT(*) {EFFECTIVE}"
            " WHERE ec.survey_id = :survey AND ec.question_id = :question GROUP BY cc.label",
        )
        assert categories == CATEGORIES
        themes = _counts(
            session,
            f"SELECT ct.label, COUNT(*) {EFFECTIVE}"
            " JOIN codebook_theme ct ON ct.codebook_id = cb.id AND ct.theme_id = cc.theme_id"
            " WHERE ec.survey_id = :survey AND ec.question_id = :question GROUP BY ct.label",
        )
        assert themes == THEMES
        # every effective category is a codebook category: the join above lost none
        total = _counts(
            session,
            "SELECT ec.survey_id, COUNT(*) FROM effective_category ec"
            " WHERE ec.survey_id = :survey AND ec.question_id = :question GROUP BY ec.survey_id",
        )
        assert total == {SURVEY: sum(CATEGORIES.values())}


def test_every_answer_is_double_coded_and_none_left_disputed(demo: Database) -> None:
    with demo.session(write=False) as session:
        statuses = _counts(
            session,
            "SELECT status, COUNT(*) FROM coding_outcome"
            " WHERE survey_id = :survey AND question_id = :question GROUP BY status",
        )
        assert set(statuses) == {"agreed", "resolved"}
        assert sum(statuses.values()) == ANSWERED
        coders = _counts(
            session,
            "SELECT coder, COUNT(*) FROM coding"
            " WHERE survey_id = :survey AND question_id = :question GROUP BY coder",
        )
        assert coders == {"coder-a": ANSWERED, "coder-b": ANSWERED}
        consensus = _counts(
            session,
            "SELECT question_id, COUNT(*) FROM coding_consensus"
            " WHERE survey_id = :survey GROUP BY question_id",
        )
        assert consensus == {QUESTION: statuses["resolved"]}
        # every category is in use, so a codebook edit may not drop one (contract §6: 409)
        found = session.connection().execute(text("SELECT category_id FROM codebook_category"))
        ids = list(found.scalars())
        assert len(ids) == len(CATEGORIES)
        in_use = categories_in_use(session, survey_id=SURVEY, question_id=QUESTION, categories=ids)
        assert sorted(in_use) == sorted(ids)


def test_coders_disagree_a_little_and_every_discrepancy_is_resolved(demo: Database) -> None:
    with demo.session(write=False) as session:
        body = coder_agreement(
            session,
            principal=ADMIN,
            survey_id=SURVEY,
            question_id=QUESTION,
            coders="coder-a,coder-b",
        )
        assert body.n_units == ANSWERED
        assert body.overall.percent_agreement is not None
        assert 90.0 <= body.overall.percent_agreement < 100.0
        assert body.overall.krippendorff_alpha is not None
        assert 0.8 < body.overall.krippendorff_alpha < 1.0
        # coder-a's counts are the paper's: it coded every answer as the consensus did
        labels: dict[str, str] = dict(
            session.connection()
            .execute(
                text(
                    "SELECT cc.category_id, cc.label FROM codebook_category cc"
                    " JOIN codebook cb ON cb.id = cc.codebook_id"
                    " WHERE cb.survey_id = :survey AND cb.question_id = :question"
                ),
                {"survey": SURVEY, "question": QUESTION},
            )
            .all()
        )
        assert {labels[c.id]: c.a_count for c in body.categories} == CATEGORIES
        assert any(c.b_count != c.a_count for c in body.categories)

        items, cursor = discrepancies(
            session,
            principal=ADMIN,
            survey_id=SURVEY,
            question_id=QUESTION,
            coders="coder-a,coder-b",
            limit=1000,
            cursor=None,
        )
        assert cursor is None
        identical = round(body.overall.percent_agreement * ANSWERED / 100)
        assert len(items) == ANSWERED - identical > 0
        resolved: dict[str, str] = dict(
            session.connection()
            .execute(
                text(
                    "SELECT r.id, o.status FROM coding_outcome o"
                    " JOIN response r ON r.pk = o.response_pk"
                    " WHERE o.survey_id = :survey AND o.question_id = :question"
                ),
                {"survey": SURVEY, "question": QUESTION},
            )
            .all()
        )
        for item in items:
            assert item.consensus is not None
            assert item.consensus != item.b
            assert resolved[item.response_id] == "resolved"
        assert sum(status == "resolved" for status in resolved.values()) == len(items)
