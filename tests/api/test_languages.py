"""Surveys in several languages (contract §4 "Languages", and its effects in §5, §7, §10):
bilingual definitions and codebooks, `?lang=` rendering, a submission's language, and
labels in the requested language on statistics, exports, charts, reports and releases."""

import copy
import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pyreadstat
import pytest
from fastapi.testclient import TestClient

from schemas.responses import SubmissionIn
from service.database import Database
from service.demo import RELEASE_ID
from service.responses import request_hash
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer, submission, survey_definition
from tests.fixtures.charts import spec_rows
from tests.fixtures.demo import load_and_publish_demo

SURVEY = "/v1/surveys/trust"
CY_SCALE = [
    "Dim yn hyderus",
    "Braidd yn ddihyder",
    "Na hyderus na dihyder",
    "Hyderus",
    "Hyderus iawn",
]
EN_SCALE = [
    "Not confident",
    "Somewhat unconfident",
    "Neither confident or unconfident",
    "Confident",
    "Very confident",
]
CY_TEXT = "Pa mor hyderus ydych chi y byddai plentyn yn ymddiried ynoch?"


def bilingual(**changes: Any) -> dict[str, Any]:
    """The test survey with `languages` en, cy: a localised title, site name, likert
    question and scale; the other texts plain strings (the same in both)."""
    definition = survey_definition(languages=["en", "cy"])
    definition["title"] = {"en": "Professionals' survey", "cy": "Arolwg gweithwyr proffesiynol"}
    definition["sites"][0]["name"] = {"en": "Site 1", "cy": "Safle 1"}
    likert = definition["questions"][2]
    assert likert["id"] == "trust_confidence"
    likert["text"] = {"en": likert["text"], "cy": CY_TEXT}
    for point, cy in zip(likert["scale"], CY_SCALE, strict=True):
        point["label"] = {"en": point["label"], "cy": cy}
    definition.update(changes)
    return definition


@pytest.fixture
def welsh(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    created = client.post("/v1/surveys", json=bilingual(), headers=admin)
    assert created.status_code == 201, created.text
    body: dict[str, Any] = created.json()
    return body


def _likert(definition: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = definition["questions"][2]
    return found


# --- definitions ---------------------------------------------------------------------------


def test_a_bilingual_definition_is_stored_as_posted_and_rendered_per_language(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    assert welsh["languages"] == ["en", "cy"]
    stored = client.get(SURVEY, headers=admin).json()
    assert stored == welsh
    assert _likert(stored)["scale"][0]["label"] == {"en": "Not confident", "cy": "Dim yn hyderus"}

    cy = client.get(SURVEY, params={"lang": "cy"}, headers=admin)
    assert cy.status_code == 200, cy.text
    body = cy.json()
    assert body["title"] == "Arolwg gweithwyr proffesiynol"
    assert body["sites"][0]["name"] == "Safle 1"
    assert body["sites"][1]["name"] == "Site 2"  # a plain string is the same in every language
    assert _likert(body)["text"] == CY_TEXT
    assert [p["label"] for p in _likert(body)["scale"]] == CY_SCALE
    en = client.get(SURVEY, params={"lang": "en"}, headers=admin).json()
    assert [p["label"] for p in _likert(en)["scale"]] == EN_SCALE
    assert en["title"] == "Professionals' survey"


def test_an_object_is_put_in_the_order_of_the_declared_languages(
    client: TestClient, admin: dict[str, str]
) -> None:
    definition = bilingual(languages=["cy", "en"])
    created = client.post("/v1/surveys", json=definition, headers=admin)
    assert created.status_code == 201, created.text
    assert list(created.json()["title"]) == ["cy", "en"]
    stats = client.get(f"{SURVEY}/stats/likert/trust_confidence", headers=admin).json()
    assert [r["label"] for r in stats["rows"]] == CY_SCALE  # cy is this survey's default


def _unknown_language(d: dict[str, Any]) -> None:
    _likert(d)["text"]["fr"] = "Êtes-vous confiant ?"


def _missing_language(d: dict[str, Any]) -> None:
    del _likert(d)["scale"][1]["label"]["cy"]


def _object_without_languages(d: dict[str, Any]) -> None:
    del d["languages"]


def _bad_tag(d: dict[str, Any]) -> None:
    d["languages"] = ["en", "not a tag"]


def _duplicate_tag(d: dict[str, Any]) -> None:
    d["languages"] = ["en", "cy", "en"]


def _no_languages(d: dict[str, Any]) -> None:
    d["languages"] = []


def _empty_object(d: dict[str, Any]) -> None:
    d["waves"][0]["name"] = {}


def _not_a_string(d: dict[str, Any]) -> None:
    d["questions"][0]["options"][0]["label"] = {"en": "Police", "cy": 7}


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (_unknown_language, ["questions", 2, "text", "fr"]),
        (_missing_language, ["questions", 2, "scale", 1, "label"]),
        (_object_without_languages, ["title"]),
        (_bad_tag, ["languages", 1]),
        (_duplicate_tag, ["languages", 2]),
        (_no_languages, ["languages"]),
        (_empty_object, ["waves", 0, "name"]),
        (_not_a_string, ["questions", 0, "options", 0, "label", "cy"]),
    ],
)
def test_a_text_that_does_not_hold_the_declared_languages_is_a_422_naming_it(
    client: TestClient, admin: dict[str, str], change: Any, loc: list[str | int]
) -> None:
    definition = copy.deepcopy(bilingual())
    change(definition)
    refused = client.post("/v1/surveys", json=definition, headers=admin)
    assert_problem(refused, 422, loc)
    assert client.get(SURVEY, headers=admin).status_code == 404


def test_an_undeclared_lang_is_a_422_also_on_a_survey_without_languages(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    assert "languages" not in survey or survey["languages"] is None
    plain = client.get(SURVEY, headers=admin)
    assert plain.status_code == 200
    assert plain.json() == survey
    for path in (
        SURVEY,
        f"{SURVEY}/stats/likert/trust_confidence",
        f"{SURVEY}/export",
        f"{SURVEY}/export/dictionary",
        f"{SURVEY}/report",
    ):
        params = {"lang": "en", "format": "csv"} if path.endswith("export") else {"lang": "en"}
        assert_problem(client.get(path, params=params, headers=admin), 422, ["query", "lang"])


def test_an_undeclared_lang_on_a_bilingual_survey_is_a_422(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    for path in (SURVEY, f"{SURVEY}/stats/composition/role", f"{SURVEY}/export/dictionary"):
        assert_problem(
            client.get(path, params={"lang": "fr"}, headers=admin), 422, ["query", "lang"]
        )


# --- codebooks -----------------------------------------------------------------------------

WELSH_THEMES: list[dict[str, Any]] = [
    {
        "id": "relationship",
        "label": {"en": "Relationship-based practice", "cy": "Ymarfer ar sail perthynas"},
        "categories": [
            {
                "id": "rapport",
                "label": {"en": "Building rapport", "cy": "Meithrin perthynas dda"},
                "description": {"en": "Getting on well", "cy": "Dod ymlaen yn dda"},
            },
            {"id": "time", "label": "Time"},
        ],
    }
]


def test_a_bilingual_codebook_is_rendered_per_language(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    put = client.put(
        f"{SURVEY}/codebooks/trust_actions", json={"themes": WELSH_THEMES}, headers=admin
    )
    assert put.status_code == 200, put.text
    assert put.json()["themes"][0]["label"] == WELSH_THEMES[0]["label"]
    stored = client.get(f"{SURVEY}/codebooks/trust_actions", headers=admin).json()
    assert stored["themes"] == put.json()["themes"]
    cy = client.get(f"{SURVEY}/codebooks/trust_actions", params={"lang": "cy"}, headers=admin)
    assert cy.status_code == 200, cy.text
    theme = cy.json()["themes"][0]
    assert theme["label"] == "Ymarfer ar sail perthynas"
    assert theme["categories"][0]["label"] == "Meithrin perthynas dda"
    assert theme["categories"][0]["description"] == "Dod ymlaen yn dda"
    assert theme["categories"][1]["label"] == "Time"
    assert_problem(
        client.get(f"{SURVEY}/codebooks/trust_actions", params={"lang": "de"}, headers=admin),
        422,
        ["query", "lang"],
    )


def test_a_codebook_text_without_the_declared_languages_is_a_422(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    themes = copy.deepcopy(WELSH_THEMES)
    del themes[0]["label"]["cy"]
    themes[0]["categories"][0]["description"]["fr"] = "Bien s'entendre"
    refused = client.put(
        f"{SURVEY}/codebooks/trust_actions", json={"themes": themes}, headers=admin
    )
    assert_problem(
        refused,
        422,
        ["themes", 0, "label"],
        ["themes", 0, "categories", 0, "description", "fr"],
    )
    assert client.get(f"{SURVEY}/codebooks/trust_actions", headers=admin).status_code == 404


def test_a_localised_codebook_on_a_survey_without_languages_is_a_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    refused = client.put(
        f"{SURVEY}/codebooks/trust_actions", json={"themes": WELSH_THEMES}, headers=admin
    )
    assert_problem(refused, 422, ["themes", 0, "label"])


# --- submissions ---------------------------------------------------------------------------


def test_a_submission_carries_its_language_round_trip(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    created = client.post(
        f"{SURVEY}/responses", json={**submission(), "language": "cy"}, headers=admin
    )
    assert created.status_code == 201, created.text
    assert created.json()["language"] == "cy"
    got = client.get(f"{SURVEY}/responses/{created.json()['id']}", headers=admin).json()
    assert got["language"] == "cy"
    plain = client.post(f"{SURVEY}/responses", json=submission(), headers=admin)
    assert plain.status_code == 201
    assert plain.json()["language"] is None
    listed = client.get(f"{SURVEY}/responses", headers=admin).json()["items"]
    assert sorted(str(i["language"]) for i in listed) == ["None", "cy"]
    events = client.get("/v1/events", params={"type": "response.created"}, headers=admin)
    assert [e["data"]["language"] for e in events.json()["items"]] == ["cy", None]
    refused = client.post(
        f"{SURVEY}/responses", json={**submission(), "language": "fr"}, headers=admin
    )
    assert_problem(refused, 422, ["language"])
    assert len(client.get(f"{SURVEY}/responses", headers=admin).json()["items"]) == 2


def test_a_submission_language_on_a_survey_without_languages_is_a_422(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    refused = client.post(
        f"{SURVEY}/responses", json={**submission(), "language": "en"}, headers=admin
    )
    assert_problem(refused, 422, ["language"])


def test_imports_carry_a_language_column(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    row = {**submission(), "wave": "final", "submitted_at": "2016-08-01T10:00:00Z"}
    ndjson = "\n".join(json.dumps({**row, "language": lang}) for lang in ("cy", "en")).encode()
    imported = client.post(
        f"{SURVEY}/responses:import",
        content=ndjson,
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )
    assert imported.status_code == 200, imported.text
    table = "site,wave,submitted_at,language,role,trust_confidence\n"
    table += "site-1,final,2016-08-02T10:00:00Z,cy,police,5\n"
    table += "site-1,final,2016-08-02T10:00:00Z,,police,4\n"
    imported = client.post(
        f"{SURVEY}/responses:import",
        content=table.encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert imported.status_code == 200, imported.text
    bad = client.post(
        f"{SURVEY}/responses:import",
        content=table.replace(",cy,", ",xx,").encode(),
        headers={**admin, "Content-Type": "text/csv"},
    )
    assert_problem(bad, 422, [1, "language"])
    exported = client.get(f"{SURVEY}/export", params={"format": "csv"}, headers=admin)
    assert exported.status_code == 200, exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["language"] for r in rows] == ["cy", "en", "cy", ""]


# --- statistics, exports, charts, reports ----------------------------------------------------


def _answers(client: TestClient, admin: dict[str, str]) -> None:
    for value in (1, 2, 2, 4, 5, 5, 5):
        stored = client.post(
            f"{SURVEY}/responses",
            json={**submission(trust_confidence=value), "language": "cy"},
            headers=admin,
        )
        assert stored.status_code == 201, stored.text


def test_statistics_take_lang_for_their_labels(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    _answers(client, admin)
    path = f"{SURVEY}/stats/likert/trust_confidence"
    en = client.get(path, params={"by": "site"}, headers=admin).json()
    cy = client.get(path, params={"by": "site", "lang": "cy"}, headers=admin).json()
    assert [r["label"] for r in en["rows"]] == EN_SCALE  # default: the first language
    assert [r["label"] for r in cy["rows"]] == CY_SCALE
    assert [g["label"] for g in cy["groups"]] == ["Safle 1", "Site 2"]
    assert [r["count"] for r in cy["rows"]] == [r["count"] for r in en["rows"]] == [1, 2, 0, 1, 3]
    assert cy["mean"] == en["mean"]
    as_csv = client.get(path, params={"lang": "cy", "format": "csv"}, headers=admin)
    assert as_csv.status_code == 200, as_csv.text
    assert [r["label"] for r in csv.DictReader(io.StringIO(as_csv.text))] == CY_SCALE
    composition = client.get(
        f"{SURVEY}/stats/composition/involved", params={"lang": "cy"}, headers=admin
    ).json()
    assert [r["label"] for r in composition["rows"]] == ["Ie", "Na"]
    vega = client.get(path, params={"lang": "cy", "format": "vega"}, headers=admin)
    assert vega.status_code == 200, vega.text
    drawn = {str(v) for row in spec_rows(vega.json()) for v in row.values()}
    assert set(CY_SCALE) & drawn
    assert not set(EN_SCALE) & drawn
    assert CY_TEXT in json.dumps(vega.json(), ensure_ascii=False)
    svg = client.get(path, params={"lang": "cy", "format": "svg"}, headers=admin)
    assert svg.status_code == 200
    assert "Hyderus iawn" in svg.text
    report = client.get(f"{SURVEY}/report", params={"lang": "cy"}, headers=admin)
    assert report.status_code == 200, report.text
    assert "Arolwg gweithwyr proffesiynol" in report.text
    assert "Hyderus iawn" in report.text


def test_exports_carry_welsh_value_and_variable_labels(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any], tmp_path: Path
) -> None:
    _answers(client, admin)
    dictionary = client.get(f"{SURVEY}/export/dictionary", params={"lang": "cy"}, headers=admin)
    assert dictionary.status_code == 200, dictionary.text
    columns = {c["name"]: c for c in dictionary.json()["columns"]}
    assert columns["trust_confidence"]["label"] == CY_TEXT
    assert [v["label"] for v in columns["trust_confidence"]["values"]] == CY_SCALE
    for fmt in ("sav", "dta"):
        got = client.get(f"{SURVEY}/export", params={"format": fmt, "lang": "cy"}, headers=admin)
        assert got.status_code == 200, got.text
        path = tmp_path / f"cy.{fmt}"
        path.write_bytes(got.content)
        reader = pyreadstat.read_sav if fmt == "sav" else pyreadstat.read_dta
        frame, meta = reader(str(path))
        assert list(frame["language"]) == ["cy"] * 7
        labels = meta.variable_value_labels["trust_confidence"]
        assert [labels[float(v)] for v in range(1, 6)] == CY_SCALE
        label = dict(zip(meta.column_names, meta.column_labels, strict=True))["trust_confidence"]
        assert label == CY_TEXT
    english = client.get(f"{SURVEY}/export", params={"format": "sav"}, headers=admin)
    path = tmp_path / "en.sav"
    path.write_bytes(english.content)
    _, meta = pyreadstat.read_sav(str(path))
    assert meta.variable_value_labels["trust_confidence"][1.0] == "Not confident"


# --- releases and the demo -----------------------------------------------------------------

DEMO = "/v1/surveys/smhm-professionals"
RELEASE = f"{DEMO}/releases/{RELEASE_ID}"
WELSH_DEMO = [
    "Dim yn hyderus",
    "Braidd yn ddihyder",
    "Na hyderus na dihyder",
    "Hyderus",
    "Hyderus iawn",
]


@pytest.fixture
def demo(database: Database, settings: Settings) -> None:
    """The demo as `hearme demo` serves it: the seed study and its release."""
    load_and_publish_demo(database, settings)


def _figures(node: Any) -> Any:
    """Everything of a table but its labels."""
    if isinstance(node, dict):
        return {k: _figures(v) for k, v in node.items() if k != "label"}
    if isinstance(node, list):
        return [_figures(v) for v in node]
    return node


def test_the_demo_shows_its_likert_question_in_welsh(
    client: TestClient, demo: None, make_key: MakeKey
) -> None:
    evaluator = bearer(make_key("evaluator"))
    definition = client.get(DEMO, params={"lang": "cy"}, headers=evaluator).json()
    likert = next(q for q in definition["questions"] if q["id"] == "trust_confidence")
    assert [p["label"] for p in likert["scale"]] == WELSH_DEMO
    assert likert["text"].startswith("Pa mor hyderus")
    en = client.get(f"{DEMO}/stats/likert/trust_confidence", headers=evaluator).json()
    cy = client.get(
        f"{DEMO}/stats/likert/trust_confidence", params={"lang": "cy"}, headers=evaluator
    ).json()
    assert [r["label"] for r in cy["rows"]] == WELSH_DEMO
    assert _figures(cy) == _figures(en)


def test_a_release_is_read_in_either_language_with_the_same_figures(
    client: TestClient, demo: None, make_key: MakeKey, admin: dict[str, str]
) -> None:
    reader = bearer(make_key("reader"))
    en = client.get(RELEASE, headers=reader).json()
    cy = client.get(RELEASE, params={"lang": "cy"}, headers=reader).json()
    assert _figures(cy) == _figures(en)
    table = f"{RELEASE}/tables/table-2-confidence"
    en_table = client.get(table, headers=reader).json()
    cy_table = client.get(table, params={"lang": "cy"}, headers=reader).json()
    assert [r["label"] for r in cy_table["rows"]] == WELSH_DEMO
    assert next(r["label"] for r in en_table["rows"]) == "Not confident"
    assert _figures(cy_table) == _figures(en_table)
    assert next(t for t in cy["tables"] if t["id"] == "table-2-confidence") == cy_table
    as_csv = client.get(table, params={"lang": "cy", "format": "csv"}, headers=reader)
    assert [r["label"] for r in csv.DictReader(io.StringIO(as_csv.text))] == WELSH_DEMO
    whole = client.get(RELEASE, params={"lang": "cy", "format": "csv"}, headers=reader)
    assert "Hyderus iawn" in whole.text
    vega = client.get(table, params={"lang": "cy", "format": "vega"}, headers=reader)
    drawn = {str(v) for row in spec_rows(vega.json()) for v in row.values()}
    assert "Hyderus iawn" in drawn
    assert "Very confident" not in drawn
    for fmt in ("svg", "png"):
        chart = client.get(table, params={"lang": "cy", "format": fmt}, headers=reader)
        assert chart.status_code == 200, chart.text
    page = client.get(RELEASE, params={"lang": "cy", "format": "html"}, headers=reader)
    assert page.status_code == 200
    assert "Hyderus iawn" in page.text
    assert_problem(client.get(table, params={"lang": "fr"}, headers=reader), 422, ["query", "lang"])

    # The labels were frozen with the figures: a later change of the Welsh texts shows in
    # live statistics, never in the release.
    definition = client.get(DEMO, headers=admin).json()
    for name in ("version", "created_at", "updated_at"):
        definition.pop(name)
    likert = next(q for q in definition["questions"] if q["id"] == "trust_confidence")
    likert["scale"][4]["label"]["cy"] = "Hyderus dros ben"
    changed = client.put(DEMO, json=definition, headers=admin)
    assert changed.status_code == 200, changed.text
    again = client.get(table, params={"lang": "cy"}, headers=reader).json()
    assert again == cy_table


def test_removing_a_language_that_stored_responses_are_in_is_a_409(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    stored = client.post(
        f"{SURVEY}/responses", json={**submission(), "language": "cy"}, headers=admin
    )
    assert stored.status_code == 201, stored.text
    english_only = survey_definition(languages=["en"])
    refused = client.put(SURVEY, json=english_only, headers=admin)
    assert_problem(refused, 409)
    assert client.get(SURVEY, headers=admin).json()["languages"] == ["en", "cy"]
    renamed = bilingual(languages=["en", "cy"], title="Professionals' survey")
    assert client.put(SURVEY, json=renamed, headers=admin).status_code == 200


def test_an_idempotent_retry_with_a_language_replays_the_first_body(
    client: TestClient, admin: dict[str, str], welsh: dict[str, Any]
) -> None:
    body = {**submission(), "language": "cy"}
    retry = {**admin, "Idempotency-Key": "form-1"}
    first = client.post(f"{SURVEY}/responses", json=body, headers=retry)
    again = client.post(f"{SURVEY}/responses", json=body, headers=retry)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert again.json()["language"] == "cy"
    other = client.post(f"{SURVEY}/responses", json={**body, "language": "en"}, headers=retry)
    assert_problem(other, 409)


def test_a_body_without_a_language_keeps_its_idempotency_fingerprint() -> None:
    """Keys recorded before submissions carried a language still match their retries."""
    data = SubmissionIn.model_validate(submission())
    before = orjson.dumps(
        {"site": "site-1", "wave": "midway", "answers": data.answers, "submitted_at": None},
        option=orjson.OPT_SORT_KEYS,
    )
    assert request_hash(data) == hashlib.sha256(before).hexdigest()
    welsh_data = SubmissionIn.model_validate({**submission(), "language": "cy"})
    assert request_hash(welsh_data) != request_hash(data)


def test_a_reader_asking_live_statistics_in_any_language_is_refused_first(
    client: TestClient, welsh: dict[str, Any], make_key: MakeKey
) -> None:
    reader = bearer(make_key("reader"))
    for lang in ("cy", "fr"):
        refused = client.get(
            f"{SURVEY}/stats/likert/trust_confidence", params={"lang": lang}, headers=reader
        )
        assert_problem(refused, 403)
