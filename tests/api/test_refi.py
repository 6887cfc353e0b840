"""REFI-QDA exchange over HTTP (issue 4, part 6): `.qdc` export and import, `.qdpx` export."""

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from service.database import Database
from service.settings import Settings
from tests.conftest import MakeKey, assert_problem, bearer, submission
from tests.refi import codebook_schema, project_schema
from tests.service.test_refi import BILLION_LAUGHS, XXE

BOOK = "/v1/surveys/trust/codebooks/trust_actions"
XML = {"Content-Type": "application/xml"}


def codebook() -> dict[str, Any]:
    return {
        "themes": [
            {
                "id": "relationship",
                "label": "Relationship-based practice",
                "domain": "being",
                "categories": [
                    {
                        "id": "rapport",
                        "label": "Building rapport",
                        "description": "Engaging the child.",
                        "keywords": ["rapport", "engage"],
                    },
                    {"id": "time", "label": "Spending time", "origin": "inductive"},
                ],
            },
            {
                "id": "child_centred",
                "label": "Child-centred practice",
                "categories": [{"id": "listening", "label": "Listening", "keywords": ["listen"]}],
            },
        ]
    }


@pytest.fixture
def book(client: TestClient, admin: dict[str, str], survey: dict[str, Any]) -> dict[str, Any]:
    put = client.put(BOOK, json=codebook(), headers=admin)
    assert put.status_code == 200, put.text
    body: dict[str, Any] = put.json()
    return body


def export_qdc(client: TestClient, headers: dict[str, str]) -> bytes:
    got = client.get(f"{BOOK}/export.qdc", headers=headers)
    assert got.status_code == 200, got.text
    content: bytes = got.content
    return content


def history(client: TestClient, admin: dict[str, str]) -> list[dict[str, Any]]:
    got = client.get(f"{BOOK}/history", headers=admin)
    assert got.status_code == 200, got.text
    body: list[dict[str, Any]] = got.json()
    return body


# --- .qdc export -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "evaluator", "coder"])
def test_the_codebook_exports_as_a_valid_qdc(
    client: TestClient, book: dict[str, Any], make_key: MakeKey, role: str
) -> None:
    got = client.get(f"{BOOK}/export.qdc", headers=bearer(make_key(role)))
    assert got.status_code == 200, got.text
    assert got.headers["content-type"].startswith("application/xml")
    assert got.headers["content-disposition"] == 'attachment; filename="trust-trust_actions.qdc"'
    codebook_schema().validate(got.text)
    assert 'name="Building rapport" isCodable="true"' in got.text
    assert got.content == export_qdc(client, bearer(make_key("admin")))


@pytest.mark.parametrize("role", ["submitter", "reader"])
def test_others_may_not_export(
    client: TestClient, book: dict[str, Any], make_key: MakeKey, role: str
) -> None:
    assert_problem(client.get(f"{BOOK}/export.qdc", headers=bearer(make_key(role))), 403)


def test_no_codebook_no_export(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    assert_problem(client.get(f"{BOOK}/export.qdc", headers=admin), 404)
    assert_problem(client.get(f"{BOOK}/export.qdpx", headers=admin), 404)


# --- .qdc import -------------------------------------------------------------------------


def test_an_export_imported_back_is_the_same_codebook_as_a_new_version(
    client: TestClient, book: dict[str, Any], admin: dict[str, str], make_key: MakeKey
) -> None:
    evaluator = bearer(make_key("evaluator", name="eva"))
    exported = export_qdc(client, admin)
    imported = client.post(f"{BOOK}/import.qdc", content=exported, headers={**evaluator, **XML})
    assert imported.status_code == 200, imported.text
    assert imported.json()["version"] == 2
    assert imported.json()["updated_by"] == "eva"
    assert imported.json()["themes"] == book["themes"]
    assert [(h["version"], h["changed_by"]) for h in history(client, admin)] == [
        (1, "admin"),
        (2, "eva"),
    ]


def test_an_edited_file_changes_the_codebook(
    client: TestClient, book: dict[str, Any], admin: dict[str, str]
) -> None:
    """What a QDA tool would hand back: names edited, the hearme lines dropped, a category
    moved to the inductive set; the GUIDs still find the ids."""
    text = export_qdc(client, admin).decode()
    text = text.replace('name="Building rapport"', 'name="Building a rapport"')
    text = re.sub(r"\n*hearme: \{[^<]*\}", "", text)
    inductive = re.search(r'<Set guid="[^"]+" name="Origin: inductive">', text)
    assert inductive is not None
    rapport_guid = re.search(r'<Code guid="([^"]+)" name="Building a rapport"', text)
    assert rapport_guid is not None
    text = text.replace(
        inductive.group(0), inductive.group(0) + f'<MemberCode guid="{rapport_guid.group(1)}"/>'
    )
    imported = client.post(
        f"{BOOK}/import.qdc",
        content=text.encode(),
        headers={**admin, "Content-Type": "application/octet-stream"},
    )
    assert imported.status_code == 200, imported.text
    rapport = imported.json()["themes"][0]["categories"][0]
    assert rapport == {
        "id": "rapport",
        "label": "Building a rapport",
        "description": "Engaging the child.",
        "origin": "inductive",
        "keywords": [],
    }
    assert client.get(BOOK, headers=admin).json()["themes"][0]["categories"][0] == rapport


def test_a_foreign_codebook_creates_one(
    client: TestClient, admin: dict[str, str], survey: dict[str, Any]
) -> None:
    file = (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<CodeBook xmlns="urn:QDA-XML:codebook:1.0" origin="Some QDA tool"><Codes>'
        '<Code guid="{5215CC69-B628-4E02-AFB9-9BEEAEE55808}" name="Topics" isCodable="false">'
        '<Code guid="d7aa29da-519b-4946-9b90-253b6db8fd0a" name="Economy" isCodable="true"'
        ' color="#ffff00"><Description>Jobs or taxes</Description></Code>'
        "</Code></Codes></CodeBook>"
    )
    imported = client.post(f"{BOOK}/import.qdc", content=file.encode(), headers={**admin, **XML})
    assert imported.status_code == 200, imported.text
    assert imported.json()["version"] == 1
    assert imported.json()["themes"] == [
        {
            "id": "topics",
            "label": "Topics",
            "domain": None,
            "categories": [
                {
                    "id": "economy",
                    "label": "Economy",
                    "description": "Jobs or taxes",
                    "origin": "deductive",
                    "keywords": [],
                }
            ],
        }
    ]


@pytest.mark.parametrize(
    ("file", "loc"),
    [
        (b"not xml at all", ["body"]),
        (BILLION_LAUGHS, ["body"]),
        (XXE, ["body"]),
        (
            b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes><Code guid="'
            b'00000000-0000-4000-8000-000000000001" name="" isCodable="true"/></Codes></CodeBook>',
            ["body", "Codes", "Code", 0, "@name"],
        ),
    ],
)
def test_a_bad_file_is_422_and_changes_nothing(
    client: TestClient,
    book: dict[str, Any],
    admin: dict[str, str],
    file: bytes,
    loc: list[str | int],
) -> None:
    before = client.get(BOOK, headers=admin).json()
    response = client.post(f"{BOOK}/import.qdc", content=file, headers={**admin, **XML})
    assert_problem(response, 422, loc)
    assert "root:" not in response.text  # nothing of /etc/passwd
    assert client.get(BOOK, headers=admin).json() == before
    assert len(history(client, admin)) == 1


def test_removing_a_coded_category_by_import_is_409(
    client: TestClient, book: dict[str, Any], admin: dict[str, str], make_key: MakeKey
) -> None:
    created = client.post(
        "/v1/surveys/trust/responses",
        json=submission(trust_actions="Listen to them."),
        headers=admin,
    )
    assert created.status_code == 201, created.text
    coded = client.put(
        f"/v1/surveys/trust/responses/{created.json()['id']}/codings/trust_actions",
        json={"categories": ["listening"]},
        headers=bearer(make_key("coder")),
    )
    assert coded.status_code == 200, coded.text
    text = export_qdc(client, admin).decode()
    without = re.sub(r"<Code guid=\"[^\"]+\" name=\"Listening\".*?</Code>\s*", "", text, flags=re.S)
    assert "Listening" not in without
    response = client.post(f"{BOOK}/import.qdc", content=without.encode(), headers={**admin, **XML})
    assert_problem(response, 409)
    assert len(history(client, admin)) == 1


def test_import_checks_type_role_and_question(
    client: TestClient, book: dict[str, Any], admin: dict[str, str], make_key: MakeKey
) -> None:
    exported = export_qdc(client, admin)
    wrong_type = {**admin, "Content-Type": "application/json"}
    assert_problem(client.post(f"{BOOK}/import.qdc", content=exported, headers=wrong_type), 415)
    for role in ("coder", "submitter", "reader"):
        headers = {**bearer(make_key(role)), **XML}
        assert_problem(client.post(f"{BOOK}/import.qdc", content=b"junk", headers=headers), 403)
    unknown = "/v1/surveys/trust/codebooks/nothing/import.qdc"
    assert_problem(client.post(unknown, content=exported, headers={**admin, **XML}), 404)
    likert = "/v1/surveys/trust/codebooks/trust_confidence/import.qdc"
    assert_problem(
        client.post(likert, content=exported, headers={**admin, **XML}), 422, ["question"]
    )
    assert len(history(client, admin)) == 1


@pytest.fixture
def small_body_client(db_url: str) -> Iterator[TestClient]:
    settings = Settings(database_url=db_url, max_body=1024)
    database = Database(settings)
    with TestClient(create_app(settings, database=database)) as client:
        yield client
    database.dispose()


def test_a_file_over_the_body_limit_is_413(
    small_body_client: TestClient, client: TestClient, book: dict[str, Any], admin: dict[str, str]
) -> None:
    exported = export_qdc(client, admin)
    assert len(exported) > 1024
    response = small_body_client.post(
        f"{BOOK}/import.qdc", content=exported, headers={**admin, **XML}
    )
    assert_problem(response, 413)
    assert len(history(client, admin)) == 1


# --- .qdpx export ------------------------------------------------------------------------


def respond(client: TestClient, admin: dict[str, str], site: str, **answers: Any) -> str:
    created = client.post(
        "/v1/surveys/trust/responses", json={**submission(**answers), "site": site}, headers=admin
    )
    assert created.status_code == 201, created.text
    response_id: str = created.json()["id"]
    return response_id


def code(client: TestClient, key: dict[str, str], response_id: str, categories: list[str]) -> None:
    put = client.put(
        f"/v1/surveys/trust/responses/{response_id}/codings/trust_actions",
        json={"categories": categories},
        headers=key,
    )
    assert put.status_code == 200, put.text


@pytest.fixture
def coded(
    client: TestClient, book: dict[str, Any], admin: dict[str, str], make_key: MakeKey
) -> dict[str, str]:
    """Three answers (two in site-1, one in site-2) and a blank, coded by ann and bob."""
    ids = {
        "a": respond(client, admin, "site-1", trust_actions="Listen to them, properly."),
        "b": respond(client, admin, "site-1", trust_actions="Build rapport: spend time."),
        "c": respond(client, admin, "site-2", trust_actions="Be there.", role="health", years=2.5),
        "blank": respond(client, admin, "site-2"),
    }
    ann, bob = bearer(make_key("coder", name="ann")), bearer(make_key("coder", name="bob"))
    code(client, ann, ids["a"], ["listening"])
    code(client, bob, ids["a"], ["listening", "rapport"])
    code(client, ann, ids["b"], ["rapport", "time"])
    code(client, bob, ids["c"], [])
    return ids


def export_qdpx(client: TestClient, headers: dict[str, str], query: str = "") -> zipfile.ZipFile:
    got = client.get(f"{BOOK}/export.qdpx{query}", headers=headers)
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "application/zip"
    assert got.headers["content-disposition"] == 'attachment; filename="trust-trust_actions.qdpx"'
    return zipfile.ZipFile(io.BytesIO(got.content))


def guids(qdc: str) -> dict[str, str]:
    """Code name -> GUID, from a .qdc."""
    return {m[1]: m[0] for m in re.findall(r'<Code guid="([^"]+)" name="([^"]+)"', qdc)}


def test_the_project_holds_answers_coders_codings_and_variables(
    client: TestClient, coded: dict[str, str], admin: dict[str, str]
) -> None:
    archive = export_qdpx(client, admin)
    qde = archive.read("project.qde").decode()
    project_schema().validate(qde)
    assert qde.count("<User ") == 2
    assert 'name="ann"' in qde
    assert 'name="bob"' in qde
    sources = {
        m[1]: (m[0], archive.read(f"sources/{m[0]}.txt").decode())
        for m in re.findall(r'<TextSource guid="([^"]+)" name="([^"]+)" plainTextPath', qde)
    }
    assert set(sources) == {coded["a"], coded["b"], coded["c"]}  # the blank answer is left out
    assert sources[coded["a"]][1] == "Listen to them, properly."
    for guid, _ in sources.values():
        assert f'plainTextPath="internal://{guid}.txt"' in qde
    assert set(archive.namelist()) == {"project.qde"} | {
        f"sources/{g}.txt" for g, _ in sources.values()
    }
    # four non-empty codings, five categories in all; bob's empty coding is a selection
    # without codings
    assert qde.count("<PlainTextSelection ") == 4
    assert qde.count("<Coding ") == 5
    assert f'startPosition="0" endPosition="{len("Listen to them, properly.")}"' in qde
    code_guids = guids(export_qdc(client, admin).decode())
    refs = re.findall(r'<CodeRef targetGUID="([^"]+)"', qde)
    assert sorted(refs) == sorted(
        [code_guids["Listening"]] * 2
        + [code_guids["Building rapport"]] * 2
        + [code_guids["Spending time"]]
    )
    # the project's codebook is the codebook's
    assert guids(qde) == code_guids
    # case variables: site, wave and role (its label)
    assert re.findall(r'<Variable guid="[^"]+" name="([^"]+)" typeOfVariable="Text"', qde) == [
        "site",
        "wave",
        "role",
    ]
    assert qde.count("<Case ") == 3
    assert qde.count("<TextValue>site-2</TextValue>") == 1
    assert qde.count("<TextValue>midway</TextValue>") == 3
    assert qde.count("<TextValue>Health services</TextValue>") == 1
    assert qde.count("<TextValue>Police</TextValue>") == 2


def test_the_project_is_the_same_file_each_time(
    client: TestClient, coded: dict[str, str], admin: dict[str, str]
) -> None:
    first = client.get(f"{BOOK}/export.qdpx", headers=admin).content
    assert client.get(f"{BOOK}/export.qdpx", headers=admin).content == first


def test_chosen_variables(client: TestClient, coded: dict[str, str], admin: dict[str, str]) -> None:
    qde = export_qdpx(client, admin, "?variable=years&variable=involved").read("project.qde")
    project_schema().validate(qde.decode())
    names = re.findall(rb'<Variable guid="[^"]+" name="([^"]+)" typeOfVariable="(\w+)"', qde)
    assert names == [
        (b"site", b"Text"),
        (b"wave", b"Text"),
        (b"years", b"Float"),
        (b"involved", b"Boolean"),
    ]
    assert b"<FloatValue>2.5</FloatValue>" in qde
    for bad in ("trust_actions", "nothing"):
        response = client.get(f"{BOOK}/export.qdpx?variable={bad}", headers=admin)
        assert_problem(response, 422, ["query", "variable"])


def test_a_site_bound_evaluator_exports_its_site_only(
    client: TestClient, coded: dict[str, str], make_key: MakeKey
) -> None:
    archive = export_qdpx(client, bearer(make_key("evaluator", sites=["site-1"])))
    qde = archive.read("project.qde").decode()
    project_schema().validate(qde)
    assert set(re.findall(r'<TextSource guid="[^"]+" name="([^"]+)"', qde)) == {
        coded["a"],
        coded["b"],
    }
    assert "site-2" not in qde
    assert "Be there." not in {archive.read(n).decode() for n in archive.namelist()[1:]}


@pytest.mark.parametrize("role", ["coder", "submitter", "reader"])
def test_only_evaluators_and_admins_export_projects(
    client: TestClient, coded: dict[str, str], make_key: MakeKey, role: str
) -> None:
    assert_problem(client.get(f"{BOOK}/export.qdpx", headers=bearer(make_key(role))), 403)
