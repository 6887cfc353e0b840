"""Exports (contract §10), each file read back by a reader that is not ours: the csv
module, openpyxl for XLSX, pyreadstat for .sav and .dta, and GNU PSPP for .sav."""

import csv
import io
import math
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import openpyxl
import pyreadstat
import pytest
from fastapi.testclient import TestClient

from service.exports import savfile
from tests.conftest import MakeKey, assert_problem, bearer
from tests.fixtures.exports import Study, coded_study

EXPORT = "/v1/surveys/trust/export"
HEADER = [
    "response_id", "site", "wave", "language", "submitted_at", "received_at",
    "role", "agencies__police", "agencies__school", "agencies__ngo", "trust_confidence",
    "years", "cases", "involved", "trust_actions", "trust_actions__status",
    "trust_actions__c__rapport", "trust_actions__c__time", "trust_actions__c__listening",
    "trust_actions__c__honest", "trust_actions__t__relationship",
    "trust_actions__t__child_centred",
]  # fmt: skip


@pytest.fixture
def study(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> Study:
    return coded_study(client, admin, make_key)


def _csv(client: TestClient, headers: dict[str, str], query: str = "") -> list[dict[str, str]]:
    response = client.get(f"{EXPORT}?format=csv{query}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    reader = csv.DictReader(io.StringIO(response.text, newline=""))
    assert reader.fieldnames == HEADER
    return list(reader)


def _file(client: TestClient, admin: dict[str, str], fmt: str, tmp_path: Path) -> Path:
    response = client.get(f"{EXPORT}?format={fmt}", headers=admin)
    assert response.status_code == 200, response.text
    path = tmp_path / f"export.{fmt}"
    path.write_bytes(response.content)
    return path


def test_csv_has_the_contract_layout_and_values(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    rows = _csv(client, admin)
    assert [r["response_id"] for r in rows] == study.ids  # the erased one never
    first, second, third = rows
    assert first["submitted_at"] == "2015-08-02T10:00:00Z"
    assert first["received_at"].endswith("Z")
    assert third["submitted_at"] == ""
    assert first["language"] == ""
    assert (first["role"], first["trust_confidence"], first["years"], first["cases"]) == (
        "health", "5", "2.5", "3",
    )  # fmt: skip
    assert (first["agencies__police"], first["agencies__school"], first["agencies__ngo"]) == (
        "1", "1", "0",
    )  # fmt: skip
    assert (first["involved"], second["involved"], third["involved"]) == ("true", "false", "")
    # an unanswered multi-choice has empty 0/1 columns
    assert second["agencies__police"] == second["agencies__ngo"] == ""
    assert first["trust_actions"] == "Listen, and take time =SUM(A1)"
    coded = {
        k.removeprefix("trust_actions__"): v
        for k, v in first.items()
        if k.startswith("trust_actions__")
    }
    assert coded == {
        "status": "single", "c__rapport": "0", "c__time": "1", "c__listening": "1",
        "c__honest": "0", "t__relationship": "1", "t__child_centred": "1",
    }  # fmt: skip
    # disputed: no effective set, so the 0/1 columns are empty; blank: no status either
    assert second["trust_actions__status"] == "disputed"
    assert third["trust_actions__status"] == third["trust_actions"] == ""
    for row in (second, third):
        assert all(row[k] == "" for k in HEADER if "__c__" in k or "__t__" in k)


def test_consensus_sets_the_exported_categories(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    path = f"/v1/surveys/trust/responses/{study.ids[1]}/codings/trust_actions/consensus"
    assert client.put(path, json={"categories": ["rapport"]}, headers=admin).status_code == 200
    second = _csv(client, admin)[1]
    assert second["trust_actions__status"] == "resolved"
    assert (second["trust_actions__c__rapport"], second["trust_actions__c__honest"]) == ("1", "0")
    assert second["trust_actions__t__relationship"] == "1"
    assert second["trust_actions__t__child_centred"] == "0"


def test_filters_and_site_bound_keys(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, study: Study
) -> None:
    assert [r["site"] for r in _csv(client, admin, "&site=site-2")] == ["site-2"]
    assert _csv(client, admin, "&wave=final") == []
    bound = bearer(make_key("evaluator", sites=["site-1"]))
    assert {r["site"] for r in _csv(client, bound)} == {"site-1"}
    assert_problem(client.get(f"{EXPORT}?format=csv&site=site-2", headers=bound), 403)
    cases: tuple[tuple[str, list[str | int]], ...] = (
        ("format=csv&site=nowhere", ["query", "site"]),
        ("format=csv&wave=never", ["query", "wave"]),
        ("format=pdf", ["query", "format"]),
        ("", ["query", "format"]),
    )
    for query, loc in cases:
        assert_problem(client.get(f"{EXPORT}?{query}", headers=admin), 422, loc)
    assert_problem(client.get("/v1/surveys/nope/export?format=csv", headers=admin), 404)
    for role in ("coder", "reader", "submitter"):
        refused = client.get(f"{EXPORT}?format=sav", headers=bearer(make_key(role)))
        assert_problem(refused, 403)


def test_xlsx_has_responses_dictionary_and_codebook_sheets(
    client: TestClient, admin: dict[str, str], study: Study, tmp_path: Path
) -> None:
    book = openpyxl.load_workbook(_file(client, admin, "xlsx", tmp_path), read_only=True)
    assert book.sheetnames == ["responses", "dictionary", "codebook"]
    responses = [list(r) for r in book["responses"].iter_rows(values_only=True)]
    assert responses[0] == HEADER
    first = dict(zip(HEADER, responses[1], strict=True))
    assert first["response_id"] == study.ids[0]
    assert (first["role"], first["trust_confidence"], first["years"]) == ("health", 5, 2.5)
    assert first["involved"] is True
    assert first["agencies__ngo"] == 0
    # text stays text: never a formula
    assert first["trust_actions"] == "Listen, and take time =SUM(A1)"
    third = dict(zip(HEADER, responses[3], strict=True))
    assert third["involved"] is None
    assert third["trust_actions__status"] is None
    dictionary = [list(r) for r in book["dictionary"].iter_rows(values_only=True)]
    assert dictionary[0][:4] == ["name", "sav_name", "dta_name", "label"]
    assert [r[0] for r in dictionary[1:]] == HEADER
    codebook = [list(r) for r in book["codebook"].iter_rows(values_only=True)]
    assert [r[4] for r in codebook[1:]] == ["rapport", "time", "listening", "honest"]
    assert codebook[1][9] == "trust_actions__c__rapport"


def test_sav_has_codes_value_labels_and_variable_labels(
    client: TestClient, admin: dict[str, str], study: Study, tmp_path: Path
) -> None:
    frame, meta = pyreadstat.read_sav(str(_file(client, admin, "sav", tmp_path)))
    assert list(frame.columns) == [name.replace("-", "_") for name in HEADER]
    assert list(frame["response_id"]) == study.ids
    labels = meta.column_names_to_labels
    assert labels["role"] == "Your role"
    assert labels["trust_confidence"] == "How confident are you that a child would trust you?"
    assert labels["agencies__school"] == "Agencies you work with: School"
    assert labels["trust_actions__c__rapport"] == "What do you need to do?: Building rapport"
    values = meta.variable_value_labels
    assert values["role"] == {1.0: "Police", 2.0: "Health services", 3.0: "Other"}
    assert values["trust_confidence"][5.0] == "Very confident"
    assert values["involved"] == {1.0: "Yes", 0.0: "No"}
    assert list(frame["role"]) == [2.0, 1.0, 3.0]
    assert list(frame["trust_confidence"]) == [5.0, 2.0, 3.0]
    assert frame["involved"][0] == 1.0
    assert frame["involved"][1] == 0.0
    assert math.isnan(frame["involved"][2])  # no answer is system-missing
    assert math.isnan(frame["years"][1])
    assert frame["years"][0] == 2.5
    assert frame["submitted_at"][0].isoformat() == "2015-08-02T10:00:00"
    assert frame["trust_actions__c__time"][0] == 1.0
    assert math.isnan(frame["trust_actions__c__time"][1])
    assert frame["trust_actions"][0] == "Listen, and take time =SUM(A1)"


def test_dta_has_codes_value_labels_and_variable_labels(
    client: TestClient, admin: dict[str, str], study: Study, tmp_path: Path
) -> None:
    frame, meta = pyreadstat.read_dta(str(_file(client, admin, "dta", tmp_path)))
    dictionary = client.get(f"{EXPORT}/dictionary", headers=admin).json()["columns"]
    assert list(frame.columns) == [c["dta_name"] for c in dictionary]
    assert all(len(name) <= 32 for name in frame.columns)
    assert list(frame["response_id"]) == study.ids
    assert meta.column_names_to_labels["role"] == "Your role"
    labelled = meta.value_labels[meta.variable_to_label["role"]]
    assert labelled == {1: "Police", 2: "Health services", 3: "Other"}
    assert list(frame["role"]) == [2.0, 1.0, 3.0]
    assert math.isnan(frame["involved"][2])
    by_name = {c["name"]: c["dta_name"] for c in dictionary}
    assert frame[by_name["trust_actions__t__child_centred"]][0] == 1.0


def test_pspp_reads_the_sav_dictionary(
    client: TestClient, admin: dict[str, str], study: Study, tmp_path: Path
) -> None:
    """GNU PSPP, which shares no code with pyreadstat, reads the file and its labels."""
    if shutil.which("pspp") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("pspp is required under CI=true (.ci/run installs it)")
        pytest.skip("GNU PSPP is not installed (apt-get install pspp)")
    sav = _file(client, admin, "sav", tmp_path)
    syntax = tmp_path / "read.sps"
    syntax.write_text(
        f"GET FILE='{sav}'.\nDISPLAY DICTIONARY.\nLIST VARIABLES=role trust_confidence involved.\n"
    )
    out = tmp_path / "pspp.csv"
    done = subprocess.run(
        ["pspp", "-o", str(out), str(syntax)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    printed = out.read_text()
    print(printed)  # the dictionary as PSPP prints it (pytest -s shows it)
    tables: dict[str, list[list[str]]] = {}
    for block in printed.split("Table: ")[1:]:
        title, _, body = block.partition("\n")
        tables[title.strip()] = list(csv.reader(io.StringIO(body.strip())))
    variables = {line[0]: line for line in tables["Variables"][1:]}
    assert list(variables) == HEADER
    assert variables["role"][2] == "Your role"
    assert variables["trust_confidence"][2] == (
        "How confident are you that a child would trust you?"
    )
    assert variables["trust_actions__c__rapport"][2] == "What do you need to do?: Building rapport"
    assert variables["role"][3] == "Nominal"
    assert variables["trust_confidence"][3] == "Ordinal"
    value_labels = [line[1:] for line in tables["Value Labels"][1:]]
    assert ["1", "Police"] in value_labels
    assert ["2", "Health services"] in value_labels
    assert ["5", "Very confident"] in value_labels
    assert tables["Data List"] == [
        ["role", "trust_confidence", "involved"],
        ["2", "5", "1"],
        ["1", "2", "0"],
        ["3", "3", "."],
    ]


def test_dictionary_lists_every_column_with_names_and_values(
    client: TestClient, admin: dict[str, str], study: Study
) -> None:
    response = client.get(f"{EXPORT}/dictionary", headers=admin)
    assert response.status_code == 200, response.text
    columns = response.json()["columns"]
    assert [c["name"] for c in columns] == HEADER
    role = next(c for c in columns if c["name"] == "role")
    assert role == {
        "name": "role",
        "sav_name": "role",
        "dta_name": "role",
        "label": "Your role",
        "type": "choice",
        "question": "role",
        "values": [
            {"code": 1, "value": "police", "label": "Police"},
            {"code": 2, "value": "health", "label": "Health services"},
            {"code": 3, "value": "other", "label": "Other"},
        ],
    }
    involved = next(c for c in columns if c["name"] == "involved")
    assert involved["values"] == [
        {"code": 1, "value": True, "label": "Yes"},
        {"code": 0, "value": False, "label": "No"},
    ]
    long = next(c for c in columns if c["name"] == "trust_actions__t__child_centred")
    assert long["type"] == "indicator"
    assert len(long["dta_name"]) <= 32
    as_csv = client.get(f"{EXPORT}/dictionary?format=csv", headers=admin)
    assert as_csv.status_code == 200
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    assert [line["name"] for line in lines] == HEADER
    assert next(line for line in lines if line["name"] == "role")["values"] == (
        "1=police: Police; 2=health: Health services; 3=other: Other"
    )
    assert_problem(client.get(f"{EXPORT}/dictionary?format=xml", headers=admin), 422)


@pytest.mark.parametrize("chunk", [1, 2])
def test_a_sav_written_in_chunks_reads_as_the_whole(
    client: TestClient,
    admin: dict[str, str],
    study: Study,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    """Large .sav files are written in chunks and joined (service/exports/savfile.py):
    readers must see the same cases, values, labels and widths as in one piece."""
    whole, whole_meta = pyreadstat.read_sav(str(_file(client, admin, "sav", tmp_path)))
    monkeypatch.setattr(savfile, "CHUNK", chunk)
    joined_path = _file(client, admin, "sav", tmp_path / "..")
    joined, meta = pyreadstat.read_sav(str(joined_path))
    assert meta.number_rows == 3
    assert joined.equals(whole)
    assert meta.column_names_to_labels == whole_meta.column_names_to_labels
    assert meta.variable_value_labels == whole_meta.variable_value_labels
    assert meta.variable_storage_width == whole_meta.variable_storage_width
    if shutil.which("pspp"):
        syntax = tmp_path / "list.sps"
        syntax.write_text(f"GET FILE='{joined_path}'.\nLIST VARIABLES=response_id role.\n")
        out = tmp_path / "list.csv"
        done = subprocess.run(
            ["pspp", "-o", str(out), str(syntax)], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stdout
        listed = list(csv.reader(io.StringIO(out.read_text().split("Table: Data List")[1])))
        assert [line for line in listed if line][1:] == [
            [study.ids[0], "2"],
            [study.ids[1], "1"],
            [study.ids[2], "3"],
        ]


@pytest.mark.parametrize("chunk", [1, 2])
def test_a_dta_written_in_chunks_reads_as_the_whole(
    client: TestClient,
    admin: dict[str, str],
    study: Study,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    chunk: int,
) -> None:
    """Large .dta files are written in chunks and joined (service/exports/dtafile.py): the
    same observations, values, labels and string widths as in one piece, and no padding
    left in the strings."""
    whole, whole_meta = pyreadstat.read_dta(str(_file(client, admin, "dta", tmp_path)))
    monkeypatch.setattr(savfile, "CHUNK", chunk)
    joined_path = _file(client, admin, "dta", tmp_path / "..")
    joined, meta = pyreadstat.read_dta(str(joined_path))
    assert meta.number_rows == 3
    assert joined.equals(whole)
    assert meta.column_names_to_labels == whole_meta.column_names_to_labels
    assert meta.value_labels == whole_meta.value_labels
    assert meta.variable_storage_width == whole_meta.variable_storage_width
    assert list(joined["response_id"]) == study.ids
    raw = joined_path.read_bytes()
    assert b"Be honest.\x00" in raw
    assert b"Be honest. " not in raw  # the padding is NULs again
