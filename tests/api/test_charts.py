"""Charts of the live statistics (contract §10): Vega-Lite v5 with data inline, SVG and
PNG drawn from it; suppressed cells drawn and labelled as suppressed, never as zero."""

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.exports.charts import chart_spec
from tests.conftest import MakeKey, assert_problem
from tests.fixtures.charts import spec_rows
from tests.fixtures.exports import Study, coded_study

STATS = "/v1/surveys/trust/stats"
PATHS = {
    "composition": f"{STATS}/composition/role",
    "likert": f"{STATS}/likert/trust_confidence",
    "compare": f"{STATS}/likert/trust_confidence/compare?wave=midway&wave=final",
    "themes": f"{STATS}/themes/trust_actions",
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def study(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> Study:
    return coded_study(client, admin, make_key)


def _get(client: TestClient, headers: dict[str, str], path: str, fmt: str) -> Any:
    joiner = "&" if "?" in path else "?"
    response = client.get(f"{path}{joiner}format={fmt}", headers=headers)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize("kind", list(PATHS))
def test_every_statistic_answers_vega_svg_and_png(
    client: TestClient, admin: dict[str, str], study: Study, kind: str
) -> None:
    vega = _get(client, admin, PATHS[kind], "vega")
    assert vega.headers["content-type"].startswith("application/vnd.vegalite.v5+json")
    spec = vega.json()
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/v5")
    assert spec_rows(spec), "the data is inline"
    assert "url" not in json.dumps(spec.get("data", {}))
    svg = _get(client, admin, PATHS[kind], "svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<svg")
    assert "<script" not in svg.text
    png = _get(client, admin, PATHS[kind], "png")
    assert png.headers["content-type"] == "image/png"
    assert png.content.startswith(PNG)
    assert_problem(client.get(f"{PATHS[kind].split('?')[0]}?format=gif", headers=admin), 422)


def test_composition_bars_are_percentages_in_option_order(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    spec = _get(client, admin, PATHS["composition"], "vega").json()
    rows = [v for v in spec_rows(spec)]
    assert [(r["category"], r["percent"]) for r in rows] == [
        ("Police", 33.3), ("Health services", 33.3), ("Other", 33.3),
    ]  # fmt: skip
    assert spec["layer"][0]["encoding"]["x"]["field"] == "percent"
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["Police", "Health services", "Other"]


def test_suppressed_cells_are_drawn_as_suppressed_never_as_zero(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    spec = _get(client, admin, PATHS["composition"] + "?min_cell=2&by=site", "vega").json()
    rows = spec_rows(spec)
    hidden = [r for r in rows if r["suppressed"]]
    assert hidden, rows
    for row in hidden:
        assert row["percent"] is None  # no bar of length zero
        assert row["text"].endswith("suppressed")
    zeros = [r for r in rows if not r["suppressed"] and r["percent"] == 0]
    assert all(r["text"] == "0.0% (0)" for r in zeros)  # a true zero is a zero
    svg = _get(client, admin, PATHS["composition"] + "?min_cell=2&by=site", "svg").text
    assert "suppressed" in svg
    likert = _get(client, admin, PATHS["likert"] + "?min_cell=2", "vega").json()
    segments = spec_rows(likert)
    # every answered point holds 1 response: they share one grey bar; the zeros stay zeros
    assert [(s["point"], s["percent"]) for s in segments] == [
        ("Not confident", 0.0), ("Confident", 0.0), ("suppressed", 100.0),
    ]  # fmt: skip


def test_likert_is_a_stacked_bar_per_group(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    spec = _get(client, admin, PATHS["likert"] + "?by=site", "vega").json()
    segments = spec_rows(spec)
    groups = list(dict.fromkeys(s["group"] for s in segments))
    assert groups == [
        "All responses (n=3, mean 3.33)",
        "Site 1 (n=2, mean 4)",
        "Site 2 (n=1, mean 2)",
    ]
    assert spec["layer"][0]["encoding"]["x"]["stack"] == "zero"
    whole = [s for s in segments if s["group"] == groups[0] and s["percent"]]
    assert [(s["point"], s["percent"]) for s in whole] == [
        ("Somewhat unconfident", 33.3), ("Neither confident or unconfident", 33.3),
        ("Very confident", 33.3),
    ]  # fmt: skip
    compare = _get(client, admin, PATHS["compare"], "vega").json()
    assert [g.split(" ")[0] for g in dict.fromkeys(s["group"] for s in spec_rows(compare))] == [
        "midway"
    ]  # the empty final wave is an empty bar, not a suppressed one


def test_themes_are_category_bars_grouped_by_theme(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    spec = _get(client, admin, PATHS["themes"], "vega").json()
    assert spec["facet"]["row"]["field"] == "theme"
    rows = spec_rows(spec)
    assert [(r["category"], r["respondents"]) for r in rows] == [
        ("Building rapport", 0), ("Spending time", 1), ("Listening", 1), ("Being honest", 0),
    ]  # fmt: skip
    assert rows[0]["theme"].startswith("Relationship-based practice (1 respondents")


def test_chart_spec_is_a_pure_function_of_a_table_body() -> None:
    """What release tables will call: a body in, a spec out, no database."""
    body = {
        "question": "q",
        "n": None,
        "missing": None,
        "rows": [{"value": 1, "label": "One", "count": None, "percent": None, "suppressed": True}],
    }
    spec = chart_spec("composition", body, title="A question")
    assert spec["title"]["text"] == "A question"
    assert spec_rows(spec)[0]["text"] == "suppressed"
    assert chart_spec("composition", body, title="A question") == spec


def test_labels_xml_cannot_hold_are_drawn_not_fatal(
    client: TestClient, admin: dict[str, str]
) -> None:
    """A label holding U+0004 made vl-convert abort the whole server process (a Rust panic
    that cannot unwind; Schemathesis found it). Such characters are drawn as U+FFFD."""
    definition = {
        "id": "ctl",
        "title": "Control\x04characters",
        "sites": [{"id": "s", "name": "S\x01"}],
        "waves": [{"id": "w", "name": "W\x02", "opens_at": None, "closes_at": None}],
        "questions": [
            {
                "id": "pick",
                "type": "choice",
                "text": "Pick\x04one",
                "options": [{"value": "a", "label": "A\x04"}, {"value": "b", "label": "B\x1f"}],
            }
        ],
    }
    created = client.post("/v1/surveys", json=definition, headers=admin)
    assert created.status_code == 201, created.text
    for fmt in ("svg", "png"):
        drawn = client.get(
            f"/v1/surveys/ctl/stats/composition/pick?format={fmt}&by=site", headers=admin
        )
        assert drawn.status_code == 200, drawn.text
    svg = client.get("/v1/surveys/ctl/stats/composition/pick?format=svg", headers=admin).text
    assert "\x04" not in svg
    assert "\ufffd" in svg
