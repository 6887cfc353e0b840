"""A release's tables as charts and the release as one report page (contract §7.6, §10),
read by a reader key: drawn from the stored, suppressed figures, never from live data."""

from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from service.database import Database
from service.demo import RELEASE_ID
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer
from tests.fixtures.charts import spec_rows
from tests.fixtures.demo import load_and_publish_demo

RELEASE = f"/v1/surveys/smhm-professionals/releases/{RELEASE_ID}"
TABLES = ("table-1-roles", "table-2-confidence", "table-3-trust-actions")


@pytest.fixture
def reader(
    client: TestClient, database: Database, settings: Settings, make_key: MakeKey
) -> dict[str, str]:
    """The demo as `hearme demo` serves it: the seed study and its release `bjsw-2017`."""
    load_and_publish_demo(database, settings)
    return bearer(make_key("reader"))


class Loads(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.sections = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.sections += tag == "section"
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "data") and not (value or "").startswith("#"):
                self.loads.append(f"{tag} {name}={value}")
        if tag in ("script", "link", "iframe", "object", "embed", "img"):
            self.loads.append(tag)


def test_a_release_table_is_a_chart_of_its_published_figures(
    client: TestClient, reader: dict[str, str]
) -> None:
    themes = client.get(f"{RELEASE}/tables/table-3-trust-actions", headers=reader).json()
    hidden = {c["label"] for t in themes["themes"] for c in t["categories"] if c.get("suppressed")}
    assert hidden, "the demo's categories under 5 are suppressed in the release"
    spec = client.get(f"{RELEASE}/tables/table-3-trust-actions?format=vega", headers=reader)
    assert spec.status_code == 200, spec.text
    assert spec.headers["content-type"].startswith("application/vnd.vegalite.v5+json")
    drawn = spec_rows(spec.json())
    suppressed = [r for r in drawn if r.get("suppressed")]
    assert suppressed, drawn
    for row in suppressed:
        assert row["text"].endswith("suppressed")
        assert row.get("percent") is None  # never a bar of length zero
    # Every published count is drawn, though the release suppresses the base beside it.
    assert themes["n_coded"] is None
    published = {
        c["label"]: c["respondents"]
        for t in themes["themes"]
        for c in t["categories"]
        if not c.get("suppressed")
    }
    assert published
    assert {r["category"]: r["respondents"] for r in drawn if not r["suppressed"]} == published
    for table in TABLES:
        svg = client.get(f"{RELEASE}/tables/{table}?format=svg", headers=reader)
        assert svg.status_code == 200, svg.text
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert "<svg" in svg.text
        png = client.get(f"{RELEASE}/tables/{table}?format=png", headers=reader)
        assert png.status_code == 200
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")


def test_a_release_is_one_self_contained_report_page(
    client: TestClient, reader: dict[str, str]
) -> None:
    response = client.get(f"{RELEASE}?format=html", headers=reader)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    outline = Loads()
    outline.feed(page)
    assert outline.loads == [], "the page loads nothing from elsewhere"
    assert outline.sections == len(TABLES)
    assert page.count("<svg") == len(TABLES)
    release = client.get(RELEASE, headers=reader).json()
    published = release["published_at"][:19].replace("T", " ")
    assert f"<dt>Computed</dt><dd>{published} UTC</dd>" in page  # the figures' moment
    assert "suppressed" in page


def test_formats_a_release_does_not_have_are_422(
    client: TestClient, reader: dict[str, str]
) -> None:
    assert_problem(client.get(f"{RELEASE}?format=png", headers=reader), 422, ["query", "format"])
    table = f"{RELEASE}/tables/table-1-roles?format=html"
    assert_problem(client.get(table, headers=reader), 422, ["query", "format"])
