"""`hearme demo` serves the paper's Tables 1, 2 and 3 (Lefevre et al. 2017) exactly.

The figures below are typed from the paper in `shared/seeds/`, not derived from the
seed module, so a drift in either the data set or the statistics fails here.
"""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.database import Database
from service.demo import load_demo, publish_demo_release
from tests.conftest import MakeKey, bearer

SURVEY = "smhm-professionals"

TABLE_1 = [  # role label, N°, % (n=204)
    ("Local authority social work", 46, 22.5),
    ("Police", 38, 18.6),
    ("Youth interventions: services, support, and youth offending", 24, 11.8),
    ("Education", 19, 9.3),
    ("Health services", 18, 8.8),
    ("Family support services, including early intervention/early help", 15, 7.4),
    ("Senior management in the local authority", 10, 4.9),
    ("Other", 34, 16.7),
]

TABLE_2 = [  # scale point, label, N°, % (n=204)
    (1, "Not confident", 17, 8.3),
    (2, "Somewhat unconfident", 53, 26.0),
    (3, "Neither confident or unconfident", 53, 26.0),
    (4, "Confident", 73, 35.8),
    (5, "Very confident", 8, 3.9),
]

TABLE_3 = {  # theme total, then each category's respondents, in the paper's order
    "Relationship-based practice": (
        147,
        [28, 26, 22, 20, 19, 16, 10, 6],
    ),
    "Child-centred practice": (121, [43, 18, 17, 15, 10, 9, 9]),
    "An ethically-grounded approach": (143, [41, 35, 24, 9, 8, 8, 6, 4, 4, 3, 1]),
    "Being skilled and knowledgeable in relation to working with CSE": (21, [13, 8]),
}


@pytest.fixture
def demo(client: TestClient, database: Database, make_key: MakeKey) -> dict[str, str]:
    with database.session() as session:
        assert load_demo(session) == (SURVEY, 204)
    return bearer(make_key("evaluator"))


def get(client: TestClient, headers: dict[str, str], path: str) -> dict[str, Any]:
    response = client.get(f"/v1/surveys/{SURVEY}/stats/{path}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_table_1_professional_roles(client: TestClient, demo: dict[str, str]) -> None:
    body = get(client, demo, "composition/role")
    assert (body["n"], body["missing"]) == (204, 0)
    assert [(r["label"], r["count"], r["percent"]) for r in body["rows"]] == TABLE_1
    assert sum(r["count"] for r in body["rows"]) == 204


def test_table_2_confidence_to_enable_trust(client: TestClient, demo: dict[str, str]) -> None:
    body = get(client, demo, "likert/trust_confidence")
    assert (body["n"], body["missing"]) == (204, 0)
    assert [(r["value"], r["label"], r["count"], r["percent"]) for r in body["rows"]] == TABLE_2
    # "60% of survey respondents were not confident": points 1-3 are 123 of 204.
    assert body["bottom2_percent"] == 34.3  # (17 + 53) / 204
    assert body["top2_percent"] == 39.7  # (73 + 8) / 204
    assert body["mean"] == 3.01  # 614 / 204 = 3.0098...
    assert body["median"] == 3.0  # the 102nd and 103rd answers are both 3


def test_table_3_themes_and_categories(client: TestClient, demo: dict[str, str]) -> None:
    body = get(client, demo, "themes/trust_actions")
    # "all but two respondents were able to offer suggestions"
    assert (body["n_responses"], body["n_answered"], body["n_blank"]) == (204, 202, 2)
    assert (body["n_coded"], body["n_disputed"], body["n_uncoded"]) == (202, 0, 0)
    found = {
        theme["label"]: (theme["mentions"], [c["respondents"] for c in theme["categories"]])
        for theme in body["themes"]
    }
    assert found == TABLE_3
    assert [t["label"] for t in body["themes"]] == list(TABLE_3)
    for theme in body["themes"]:
        assert theme["mentions"] == sum(c["respondents"] for c in theme["categories"])
        assert theme["respondents"] <= theme["mentions"]
        for category in theme["categories"]:
            assert category["percent"] == round(category["respondents"] / 202 * 100 + 1e-9, 1)


def test_the_demo_release_shows_readers_the_tables_with_small_cells_withheld(
    client: TestClient, database: Database, demo: dict[str, str], make_key: MakeKey
) -> None:
    """`hearme demo` publishes `bjsw-2017`: readers get Tables 1-3 with the cells below 5
    withheld, and everything that would give them away (here the 2 blank answers, and
    so the base of 202 and the percentages of Table 3)."""
    with database.session() as session:
        assert publish_demo_release(session, SURVEY, min_cell=5, audit_seconds=60)
        assert not publish_demo_release(session, SURVEY, min_cell=5, audit_seconds=60)
    reader = bearer(make_key("reader"))
    assert (
        client.get(f"/v1/surveys/{SURVEY}/stats/composition/role", headers=reader).status_code
        == 403
    )
    release = client.get(f"/v1/surveys/{SURVEY}/releases/bjsw-2017", headers=reader)
    assert release.status_code == 200, release.text
    tables = {t["id"]: t for t in release.json()["tables"]}
    assert release.json()["n_responses"] == 204
    body = tables["table-3-trust-actions"]
    assert (body["n_responses"], body["n_blank"], body["n_coded"]) == (204, None, None)
    categories = [c for t in body["themes"] for c in t["categories"]]
    hidden = {c["id"]: c["respondents"] for c in categories if c["suppressed"]}
    assert hidden == dict.fromkeys(["trust_in_child", "respectful", "fair", "rights"])
    mentions = {t["label"]: t["mentions"] for t in body["themes"]}
    assert mentions == {
        label: None if total == 143 else total for label, (total, _) in TABLE_3.items()
    }
    table_1 = tables["table-1-roles"]
    assert [(r["count"], r["percent"]) for r in table_1["rows"]] == [(n, p) for _, n, p in TABLE_1]
    published = [c["respondents"] for c in categories if not c["suppressed"]]
    assert published == [n for _, counts in TABLE_3.values() for n in counts if n >= 5]
    assert all(c["percent"] is None for c in categories)  # their base is withheld
    table_2 = tables["table-2-confidence"]
    assert [(r["count"], r["percent"]) for r in table_2["rows"]] == [
        (n, p) for _, _, n, p in TABLE_2
    ]
    assert (table_2["mean"], table_2["median"]) == (3.01, 3.0)
