"""`import.qdpx` (contract §10): export the coded answers, code them in another tool, and
read the codings back; a round trip loses nothing."""

import io
import uuid
import xml.etree.ElementTree as ET
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.coding import refi_import
from tests.conftest import CODEBOOK_THEMES, MakeKey, assert_problem, bearer
from tests.refi import project_schema

NS = "urn:QDA-XML:project:1.0"
Q = f"{{{NS}}}"
CODEBOOK = "/v1/surveys/trust/codebooks/trust_actions"
IMPORT = CODEBOOK + "/import.qdpx"
ZIP = {"Content-Type": "application/zip"}
CODINGS = "/v1/surveys/trust/responses/{}/codings/trust_actions"

ET.register_namespace("", NS)


@pytest.fixture
def coded(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, survey: dict[str, Any]
) -> dict[str, str]:
    """Three answers and a blank one; coder-a and coder-b disagree on `one`, which has a
    consensus; coder-a's coding of `two` is empty; `three` is uncoded."""
    assert client.put(CODEBOOK, json={"themes": CODEBOOK_THEMES}, headers=admin).status_code == 200
    ids = {}
    for name, text in (("one", "Listen to them."), ("two", "Nothing."), ("three", "Take time.")):
        created = client.post(
            "/v1/surveys/trust/responses",
            json={"site": "site-1", "wave": "midway",
                  "answers": {"role": "police", "trust_confidence": 4, "trust_actions": text}},
            headers=admin,
        )  # fmt: skip
        assert created.status_code == 201, created.text
        ids[name] = created.json()["id"]
    blank = client.post(
        "/v1/surveys/trust/responses",
        json={"site": "site-1", "wave": "midway", "answers": {"role": "police",
              "trust_confidence": 2}},
        headers=admin,
    )  # fmt: skip
    assert blank.status_code == 201
    a = bearer(make_key("coder", name="coder-a"))
    b = bearer(make_key("coder", name="coder-b"))
    for headers, which, categories in (
        (a, "one", ["listening"]),
        (b, "one", ["listening", "time"]),
        (a, "two", []),
    ):
        put = client.put(
            CODINGS.format(ids[which]), json={"categories": categories}, headers=headers
        )
        assert put.status_code == 200, put.text
    agreed = client.put(
        CODINGS.format(ids["one"]) + "/consensus", json={"categories": ["listening"]}, headers=admin
    )
    assert agreed.status_code == 200, agreed.text
    return ids


def _state(client: TestClient, admin: dict[str, str], ids: dict[str, str]) -> dict[str, Any]:
    """Every coding, consensus and status, without the times."""
    state = {}
    for name, response_id in ids.items():
        body = client.get(CODINGS.format(response_id), headers=admin).json()
        state[name] = {
            "codings": {c["coder"]: c["categories"] for c in body["codings"]},
            "consensus": body["consensus"],
            "status": body["status"],
        }
    return state


def _export(client: TestClient, admin: dict[str, str]) -> dict[str, bytes]:
    response = client.get(CODEBOOK + "/export.qdpx", headers=admin)
    assert response.status_code == 200, response.text
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    return {name: archive.read(name) for name in archive.namelist()}


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _post(client: TestClient, headers: dict[str, str], content: bytes, query: str = "") -> Any:
    return client.post(IMPORT + query, content=content, headers={**headers, **ZIP})


def test_an_unedited_export_imports_as_unchanged(
    client: TestClient, admin: dict[str, str], coded: dict[str, str]
) -> None:
    before = _state(client, admin, coded)
    members = _export(client, admin)
    qde = members["project.qde"].decode()
    assert 'name="hearme consensus"' in qde  # the consensus travels
    assert qde.count("<PlainTextSelection ") == 4  # three codings (one empty) and a consensus
    response = _post(client, admin, _zip(members))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "responses": 3,
        "coders": ["coder-a", "coder-b"],
        "codings": 0,
        "unchanged": 3,
        "consensus": 0,
        "unmatched_sources": [],
        "dry_run": False,
    }
    assert _state(client, admin, coded) == before


def _edit_as_another_tool(members: dict[str, bytes], ids: dict[str, str]) -> bytes:
    """What a QDA tool writes back: a new user, selections with codings (on part of the
    text), a code it knows by name only, a source renamed by GUID, a source of its own."""
    root = ET.fromstring(members["project.qde"])
    users = root.find(f"{Q}Users")
    assert users is not None
    jane = str(uuid.uuid4())
    ET.SubElement(users, f"{Q}User", guid=jane, name="Jane Smith")
    coder_a = next(u.get("guid") for u in users if u.get("name") == "coder-a")
    codes = root.find(f"{Q}CodeBook/{Q}Codes")
    assert codes is not None
    by_name = {c.get("name"): c.get("guid") for c in codes.iter(f"{Q}Code")}
    honest = str(uuid.uuid4())  # the tool made its own code, named as ours
    ET.SubElement(codes, f"{Q}Code", guid=honest, name="Being honest", isCodable="true")
    sources = {s.get("name"): s for s in root.iter(f"{Q}TextSource")}

    def select(source: ET.Element, user: str | None, *refs: str) -> None:
        selection = ET.SubElement(
            source, f"{Q}PlainTextSelection", guid=str(uuid.uuid4()), startPosition="0",
            endPosition="4",
        )  # fmt: skip
        if user is not None:
            selection.set("creatingUser", user)
        for ref in refs:
            coding = ET.SubElement(selection, f"{Q}Coding", guid=str(uuid.uuid4()))
            if user is None:
                coding.set("creatingUser", jane)
            ET.SubElement(coding, f"{Q}CodeRef", targetGUID=ref)

    two, three = sources[ids["two"]], sources[ids["three"]]
    select(two, jane, honest, by_name["Building rapport"] or "")
    select(two, jane, honest)  # the same code twice is one category
    three.set("guid", str(uuid.uuid4()))  # matched by name
    select(three, coder_a, "{" + (by_name["Spending time"] or "").upper() + "}")
    select(three, None, by_name["Listening"] or "")  # the coding names its user
    extra = ET.SubElement(
        root.find(f"{Q}Sources"), f"{Q}TextSource", guid=str(uuid.uuid4()),  # type: ignore[arg-type]
        name="interview-7", plainTextPath="internal://x.txt",
    )  # fmt: skip
    select(extra, jane, honest)
    project = ET.tostring(root, xml_declaration=True, encoding="utf-8")
    project_schema().validate(project.decode())
    return _zip({**members, "project.qde": project})


def test_codings_made_elsewhere_come_back_dry_run_first(
    client: TestClient, admin: dict[str, str], coded: dict[str, str]
) -> None:
    before = _state(client, admin, coded)
    edited = _edit_as_another_tool(_export(client, admin), coded)
    expected = {
        "responses": 3,
        "coders": ["Jane Smith", "coder-a", "coder-b"],
        "codings": 3,  # Jane's of two and of three, coder-a's of three
        "unchanged": 3,
        "consensus": 0,
        "unmatched_sources": ["interview-7"],
    }
    dry = _post(client, admin, edited, "?dry_run=true")
    assert dry.status_code == 200, dry.text
    assert dry.json() == {**expected, "dry_run": True}
    assert _state(client, admin, coded) == before  # a dry run stores nothing
    done = _post(client, admin, edited)
    assert done.status_code == 200, done.text
    assert done.json() == {**expected, "dry_run": False}
    after = _state(client, admin, coded)
    assert after["one"] == before["one"]
    assert after["two"]["codings"] == {"coder-a": [], "Jane Smith": ["honest", "rapport"]}
    assert after["two"]["status"] == "disputed"
    assert after["three"]["codings"] == {"coder-a": ["time"], "Jane Smith": ["listening"]}
    agreement = client.get(
        CODEBOOK + "/agreement", params={"coders": "coder-a,Jane Smith"}, headers=admin
    )
    assert agreement.status_code == 200, agreement.text
    assert agreement.json()["n_units"] == 2
    again = _post(client, admin, edited)
    assert again.json()["codings"] == 0  # importing twice changes nothing more
    assert again.json()["unchanged"] == 6


def test_a_changed_consensus_comes_back(
    client: TestClient, admin: dict[str, str], coded: dict[str, str]
) -> None:
    members = _export(client, admin)
    root = ET.fromstring(members["project.qde"])
    codes = {c.get("name"): c.get("guid") for c in root.iter(f"{Q}Code")}
    consensus_user = next(
        u.get("guid") for u in root.iter(f"{Q}User") if u.get("name") == "hearme consensus"
    )
    for selection in root.iter(f"{Q}PlainTextSelection"):
        if selection.get("creatingUser") == consensus_user:
            ref = selection.find(f"{Q}Coding/{Q}CodeRef")
            assert ref is not None
            ref.set("targetGUID", codes["Spending time"] or "")
    edited = _zip({**members, "project.qde": ET.tostring(root, encoding="utf-8")})
    done = _post(client, admin, edited)
    assert done.status_code == 200, done.text
    assert done.json()["consensus"] == 1
    assert done.json()["coders"] == ["coder-a", "coder-b"]  # the consensus is no coder
    state = _state(client, admin, coded)
    assert state["one"]["consensus"] == ["time"]
    assert state["one"]["status"] == "resolved"


def test_codes_matching_no_category_are_a_422_and_store_nothing(
    client: TestClient, admin: dict[str, str], coded: dict[str, str]
) -> None:
    before = _state(client, admin, coded)
    members = _export(client, admin)
    root = ET.fromstring(members["project.qde"])
    codes = root.find(f"{Q}CodeBook/{Q}Codes")
    assert codes is not None
    unused, used = str(uuid.uuid4()), str(uuid.uuid4())
    ET.SubElement(codes, f"{Q}Code", guid=unused, name="Never used", isCodable="true")
    ET.SubElement(codes, f"{Q}Code", guid=used, name="Resilience", isCodable="true")
    source = next(root.iter(f"{Q}TextSource"))
    user = next(root.iter(f"{Q}User")).get("guid") or ""
    selection = ET.SubElement(
        source, f"{Q}PlainTextSelection", guid=str(uuid.uuid4()), startPosition="0",
        endPosition="1", creatingUser=user,
    )  # fmt: skip
    for target in (used, str(uuid.uuid4())):  # a known code's name, and no code at all
        coding = ET.SubElement(selection, f"{Q}Coding", guid=str(uuid.uuid4()))
        ET.SubElement(coding, f"{Q}CodeRef", targetGUID=target)
    edited = _zip({**members, "project.qde": ET.tostring(root, encoding="utf-8")})
    body = assert_problem(_post(client, admin, edited), 422)
    named = [e["loc"][-1] for e in body["errors"]]
    assert "Resilience" in named
    assert "Never used" not in named  # only the codes codings use must match
    assert len(named) == 2
    assert _state(client, admin, coded) == before


def test_bad_archives_are_refused_not_500(
    client: TestClient,
    admin: dict[str, str],
    coded: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert_problem(_post(client, admin, b"not a zip"), 422, ["body"])
    assert_problem(_post(client, admin, _zip({"other.txt": b"x"})), 422, ["body", "project.qde"])
    dtd = (
        b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]>'
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="x">&a;</Project>'
    )
    assert_problem(_post(client, admin, _zip({"project.qde": dtd})), 422, ["body"])
    assert_problem(_post(client, admin, _zip({"project.qde": b"<Project"})), 422, ["body"])
    wrong_root = b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"/>'
    assert_problem(_post(client, admin, _zip({"project.qde": wrong_root})), 422)
    monkeypatch.setattr(refi_import, "MAX_PROJECT_BYTES", 10_000)
    bomb = _zip({"project.qde": b"<Project>" + b" " * 2_000_000 + b"</Project>"})
    assert len(bomb) < 20_000  # two megabytes of spaces deflate to a few kilobytes
    assert_problem(_post(client, admin, bomb), 413)
    refused = client.post(IMPORT, content=b"x", headers={**admin, "Content-Type": "text/plain"})
    assert_problem(refused, 415)
    assert_problem(
        client.post(
            "/v1/surveys/trust/codebooks/role/import.qdpx",
            content=_zip({}),
            headers={**admin, **ZIP},
        ),
        404,
    )


def test_the_key_is_checked_before_the_upload(
    client: TestClient, make_key: MakeKey, survey: dict[str, Any]
) -> None:
    """401 without a key and 403 for a coder, whatever the body's type (Schemathesis found
    a 415 answered before the 401); the type is checked only for a key that may import."""
    assert_problem(client.post(IMPORT, content=b"not a zip"), 401)
    assert_problem(client.post(IMPORT, content=b"x", headers={"Content-Type": "text/plain"}), 401)
    coder = bearer(make_key("coder"))
    assert_problem(client.post(IMPORT, content=b"x", headers=coder), 403)
    evaluator = bearer(make_key("evaluator"))
    assert_problem(client.post(IMPORT, content=b"x", headers=evaluator), 415)
