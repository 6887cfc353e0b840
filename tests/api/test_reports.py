"""Reports (contract §10): one self-contained HTML page of live statistics with charts."""

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import MakeKey, assert_problem, bearer
from tests.fixtures.exports import Study, coded_study

REPORT = "/v1/surveys/trust/report"


@pytest.fixture
def study(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> Study:
    return coded_study(client, admin, make_key)


class Outline(HTMLParser):
    """The page's section headings, and every attribute that could load something."""

    def __init__(self) -> None:
        super().__init__()
        self.headings: list[str] = []
        self.loads: list[tuple[str, str, str]] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_h2 = tag == "h2"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data", "srcset") and not (
                value or ""
            ).startswith("#"):
                self.loads.append((tag, name, value or ""))
        if tag in ("script", "link", "iframe", "object", "embed", "img"):
            self.loads.append((tag, "", ""))

    def handle_data(self, data: str) -> None:
        if self._in_h2 and data.strip():
            self.headings.append(data.strip())
            self._in_h2 = False


def _page(client: TestClient, headers: dict[str, str], query: str = "") -> str:
    response = client.get(f"{REPORT}?format=html{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    return str(response.text)


def test_report_holds_every_question_with_a_table_each_with_chart_and_scope(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    page = _page(client, admin)
    outline = Outline()
    outline.feed(page)
    # number and uncoded text questions have no table; the coded text question has one
    assert outline.headings == [
        "1. Your role",
        "2. Agencies you work with",
        "3. How confident are you that a child would trust you?",
        "4. Directly involved in a case?",
        "5. What do you need to do?",
    ]
    assert outline.loads == [], "the page loads nothing from elsewhere"
    assert "@import" not in page
    assert "url(http" not in page
    assert page.count("<svg") == 5
    sections = page.split("<section")[1:]
    for section in sections:
        assert "<dt>Sites</dt><dd>Site 1, Site 2</dd>" in section
        assert "<dt>Waves</dt><dd>Mid-stage survey, Final survey</dd>" in section
        assert re.search(r"<dt>Computed</dt><dd>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</dd>", section)
    assert "<dt>n</dt><dd>3 answered, 0 missing</dd>" in sections[0]
    assert "<dt>n</dt><dd>1 coded of 2 answers</dd>" in sections[4]
    assert "mean 3.33, median 3.0" in sections[2]


def test_report_filters_questions_and_suppression(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, study: Study
) -> None:
    page = _page(client, admin, "&question=trust_confidence&question=role&site=site-1&min_cell=2")
    outline = Outline()
    outline.feed(page)
    assert outline.headings == [
        "1. How confident are you that a child would trust you?",
        "2. Your role",
    ]
    assert "<dt>Sites</dt><dd>Site 1</dd>" in page
    assert "<dt>Suppressed below</dt><dd>2</dd>" in page
    assert '<td class="suppressed">suppressed</td>' in page
    bound = bearer(make_key("evaluator", sites=["site-2"]))
    assert "<dt>Sites</dt><dd>Site 2</dd>" in _page(client, bound)
    assert_problem(client.get(f"{REPORT}?site=site-1", headers=bound), 403)
    assert_problem(
        client.get(f"{REPORT}?question=years", headers=admin), 422, ["query", "question"]
    )
    assert_problem(client.get(f"{REPORT}?question=nope", headers=admin), 422)
    assert_problem(client.get(f"{REPORT}?format=pdf", headers=admin), 422, ["query", "format"])
    for role in ("reader", "coder", "submitter"):
        assert_problem(client.get(REPORT, headers=bearer(make_key(role))), 403)


def test_labels_are_escaped(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    """Labels are user input: a label that looks like markup is shown, never obeyed."""
    definition = dict(survey)
    for key in ("version", "created_at", "updated_at"):
        definition.pop(key)
    definition["title"] = "Survey <script>alert(1)</script>"
    role = definition["questions"][0]
    role["options"][0]["label"] = '<img src="https://evil.example/x.png">Police'
    role["text"] = "Your <b>role</b> & more"
    replaced = client.put("/v1/surveys/trust", json=definition, headers=admin)
    assert replaced.status_code == 200, replaced.text
    created = client.post(
        "/v1/surveys/trust/responses",
        json={
            "site": "site-1",
            "wave": "midway",
            "answers": {"role": "police", "trust_confidence": 4},
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    page = _page(client, admin, "&question=role")
    outline = Outline()
    outline.feed(page)
    assert outline.loads == []
    assert "<script>" not in page
    assert "<b>role</b>" not in page
    assert "&lt;img src=" in page  # in the table, escaped by Jinja2
    assert "Your &lt;b&gt;role&lt;/b&gt; &amp; more" in page
