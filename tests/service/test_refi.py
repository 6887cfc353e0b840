"""REFI-QDA exchange (issue 4, part 6) without HTTP: the `.qdc` both ways and the `.qdpx`,
each file checked against the standard's XML schemas (tests/refi)."""

import io
import zipfile
from datetime import UTC, datetime
from typing import Any

import pytest

from schemas.codebooks import CodebookIn, CodebookPublic
from schemas.codings import Coding
from schemas.responses import Response
from service.coding.refi import (
    category_guid,
    codebook_qdc,
    known_guids,
    parse_qdc,
    slugify,
    theme_guid,
)
from service.coding.refi_project import CaseVariable, project_qdpx
from service.errors import Invalid
from service.seed.dataset import load_codebook
from tests.refi import codebook_schema, project_schema

NS = "urn:QDA-XML:codebook:1.0"
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def public(
    data: dict[str, Any], survey: str = "smhm", question: str = "trust_actions"
) -> CodebookPublic:
    return CodebookPublic(
        survey=survey,
        question=question,
        version=1,
        updated_at=WHEN,
        updated_by="admin",
        themes=CodebookIn.model_validate(data).themes,
    )


def seed() -> CodebookPublic:
    return public(load_codebook())


def qdc(body: str, *, sets: str = "") -> bytes:
    """A codebook file around `body` (the content of its Codes element)."""
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<CodeBook xmlns="{NS}">'
        f"<Codes>{body}</Codes>{sets}</CodeBook>"
    ).encode()


def code(name: str, guid: str, inner: str = "", codable: bool = True) -> str:
    flag = "true" if codable else "false"
    return f'<Code guid="{guid}" name="{name}" isCodable="{flag}">{inner}</Code>'


def guid(n: int) -> str:
    return f"{{00000000-0000-4000-8000-{n:012d}}}"


def problem_locs(exc: pytest.ExceptionInfo[Invalid]) -> list[list[str | int]]:
    return [list(e.loc) for e in exc.value.errors]


# --- the codebook file -------------------------------------------------------------------


def test_the_seed_codebook_goes_out_valid_and_comes_back_equal() -> None:
    exported = codebook_qdc(seed())
    codebook_schema().validate(exported.decode())
    back = parse_qdc(exported)
    assert back.model_dump(mode="json")["themes"] == load_codebook()["themes"]


def test_an_export_is_stable_and_its_guids_follow_the_ids() -> None:
    first, second = codebook_qdc(seed()), codebook_qdc(seed())
    assert first == second
    assert theme_guid("smhm", "trust_actions", "relationship") in first.decode()
    assert category_guid("smhm", "trust_actions", "rapport") in first.decode()
    other = codebook_qdc(public(load_codebook(), survey="other"))
    assert category_guid("smhm", "trust_actions", "rapport") not in other.decode()


def test_themes_are_uncodable_parents_of_codable_categories() -> None:
    exported = codebook_qdc(seed()).decode()
    assert exported.startswith('<?xml version="1.0" encoding="utf-8"?>\n<CodeBook xmlns="' + NS)
    assert '<Code guid="' + theme_guid("smhm", "trust_actions", "relationship") in exported
    assert 'name="Relationship-based practice" isCodable="false"' in exported
    assert 'name="Building a good rapport/engagement/relationship" isCodable="true"' in exported
    assert '<Set guid="' in exported
    assert 'name="Domain: being"' in exported
    assert 'name="Origin: inductive"' in exported


def test_characters_xml_cannot_carry_are_dropped() -> None:
    data = load_codebook()
    data["themes"][0]["label"] = "Relation\x01ship"
    data["themes"][0]["categories"][0]["description"] = "Bell\x07 and tab\t kept"
    exported = codebook_qdc(public(data))
    codebook_schema().validate(exported.decode())
    back = parse_qdc(exported)
    assert back.themes[0].label == "Relationship"
    assert back.themes[0].categories[0].description == "Bell and tab\t kept"


def test_a_file_without_hearme_lines_takes_ids_from_known_guids_then_names() -> None:
    known = known_guids(seed())
    file = qdc(
        code(
            "Relationships, renamed",
            theme_guid("smhm", "trust_actions", "relationship"),
            code("Rapport", category_guid("smhm", "trust_actions", "rapport"))
            + code("Café culture!", guid(1), "<Description>Meeting in cafés.</Description>")
            + code("Café  Culture", guid(2)),
            codable=False,
        )
        + code("New theme", guid(3), code("???", guid(4)), codable=False)
    )
    parsed = parse_qdc(file, known=known)
    assert [t.id for t in parsed.themes] == ["relationship", "new_theme"]
    assert [t.label for t in parsed.themes] == ["Relationships, renamed", "New theme"]
    categories = parsed.themes[0].categories
    assert [c.id for c in categories] == ["rapport", "cafe_culture", "cafe_culture_2"]
    assert categories[1].description == "Meeting in cafés."
    assert categories[1].keywords == []
    assert categories[1].origin == "deductive"
    assert parsed.themes[1].categories[0].id == "code"
    assert parsed.themes[1].domain is None


def test_sets_give_domains_and_origins() -> None:
    file = qdc(
        code("Theme", guid(1), code("A", guid(2)) + code("B", guid(3)), codable=False),
        sets=(
            f'<Sets><Set guid="{guid(8)}" name="domain: Doing">'
            f'<MemberCode guid="{guid(1)}"/></Set>'
            f'<Set guid="{guid(9)}" name="Origin: inductive"><MemberCode guid="{guid(3)}"/></Set>'
            f'<Set guid="{guid(7)}" name="Favourites"><MemberCode guid="{guid(2)}"/></Set></Sets>'
        ),
    )
    parsed = parse_qdc(file)
    assert parsed.themes[0].domain == "doing"
    assert [c.origin for c in parsed.themes[0].categories] == ["deductive", "inductive"]


def test_slugs() -> None:
    assert slugify("\u2018Being\u2019 qualities/use of self") == "being_qualities_use_of_self"
    assert slugify("Ünïcödé") == "unicode"
    assert slugify("...") == "code"
    assert len(slugify("x" * 300)) == 64


@pytest.mark.parametrize(
    ("file", "loc"),
    [
        (b"", ["body"]),
        (b"<CodeBook", ["body"]),
        (b"\xff\xfe not xml", ["body"]),
        (b'<CodeBook xmlns="urn:other"><Codes/></CodeBook>', ["body"]),
        (f'<Project xmlns="{NS}"/>'.encode(), ["body"]),
        (f'<CodeBook xmlns="{NS}"/>'.encode(), ["body", "Codes"]),
        (qdc(code("", guid(1))), ["body", "Codes", "Code", 0, "@name"]),
        (
            qdc(code("T", guid(1), code("C", guid(2), code("Too deep", guid(3))))),
            ["body", "Codes", "Code", 0, "Code", 0, "Code"],
        ),
        (
            qdc(code("T", guid(1), code("C", guid(2), "<Description>hearme: [1]</Description>"))),
            ["body", "Codes", "Code", 0, "Code", 0, "Description"],
        ),
        (
            qdc(code("T", guid(1), code("x" * 501, guid(2)))),
            ["body", "Codes", "Code", 0, "Code", 0, "@name"],
        ),
        (
            qdc(
                code(
                    "T",
                    guid(1),
                    code("C", guid(2), '<Description>hearme: {"id": "Not a slug"}</Description>'),
                )
            ),
            ["body", "Codes", "Code", 0, "Code", 0, "Description"],
        ),
        (
            qdc(
                code(
                    "T",
                    guid(1),
                    code("C", guid(2), '<Description>hearme: {"id": [1]}</Description>'),
                )
            ),
            ["body", "Codes", "Code", 0, "Code", 0, "Description"],
        ),
        (
            qdc(
                code(
                    "T",
                    guid(1),
                    code("C", guid(2), '<Description>hearme: {"keywords": "x"}</Description>'),
                )
            ),
            ["body", "Codes", "Code", 0, "Code", 0, "Description"],
        ),
        (
            qdc(
                code(
                    "T",
                    guid(1),
                    code("A", guid(2), '<Description>hearme: {"id": "a"}</Description>'),
                )
                + code(
                    "U",
                    guid(3),
                    code("B", guid(4), '<Description>hearme: {"id": "a"}</Description>'),
                )
            ),
            ["body", "Codes"],
        ),
    ],
)
def test_bad_files_are_invalid_naming_where(file: bytes, loc: list[str | int]) -> None:
    with pytest.raises(Invalid) as exc:
        parse_qdc(file)
    assert loc in problem_locs(exc), problem_locs(exc)


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes>
<Code guid="00000000-0000-4000-8000-000000000001" name="&lol4;" isCodable="false"/>
</Codes></CodeBook>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE CodeBook [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes>
<Code guid="00000000-0000-4000-8000-000000000001" name="&secret;" isCodable="false"/>
</Codes></CodeBook>"""

DTD_ONLY = b"""<?xml version="1.0"?>
<!DOCTYPE CodeBook SYSTEM "http://example.invalid/evil.dtd">
<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes>
<Code guid="00000000-0000-4000-8000-000000000001" name="T" isCodable="false"/>
</Codes></CodeBook>"""


@pytest.mark.parametrize("file", [BILLION_LAUGHS, XXE, DTD_ONLY])
def test_dtds_and_entities_are_refused(file: bytes) -> None:
    with pytest.raises(Invalid) as exc:
        parse_qdc(file)
    assert problem_locs(exc) == [["body"]]
    assert "DTD" in exc.value.errors[0].msg


# --- the project file --------------------------------------------------------------------


def response(pk: int, site: str, text: str | None, role: str = "police") -> Response:
    answers: dict[str, Any] = {"role": role, "trust_confidence": 4}
    if text is not None:
        answers["trust_actions"] = text
    return Response(
        pk=pk,
        id=f"r{pk}",
        survey_id="smhm",
        site=site,
        wave="midway",
        received_at=WHEN,
        submitted_by="form",
        answers=answers,
    )


def coding(pk: int, coder: str, categories: list[str]) -> Coding:
    return Coding(
        response_pk=pk,
        survey_id="smhm",
        question_id="trust_actions",
        coder=coder,
        categories=categories,
        coded_at=WHEN,
    )


VARIABLES = [
    CaseVariable("site", "Text", "Site.", lambda r: ("TextValue", r.site)),
    CaseVariable("confidence", "Integer", "Likert.", lambda r: ("IntegerValue", "4")),
]


def test_the_project_file_is_valid_and_holds_every_answer_and_coding() -> None:
    text = "Café 😀: listen to them."
    qdpx = project_qdpx(
        seed(),
        name="Trust (trust_actions)",
        description="What do you need to do?",
        responses=[
            response(1, "site-1", text),
            response(2, "site-2", None),
            response(3, "site-2", "Be kind."),
        ],
        codings=[
            coding(1, "ann", ["listening", "rapport"]),
            coding(1, "bob", ["listening"]),
            coding(3, "bob", []),
        ],
        variables=VARIABLES,
    )
    archive = zipfile.ZipFile(io.BytesIO(qdpx))
    names = archive.namelist()
    assert names[0] == "project.qde"
    qde = archive.read("project.qde").decode()
    project_schema().validate(qde)
    sources = sorted(n for n in names if n != "project.qde")
    assert len(sources) == 2
    assert all(n.startswith("sources/") and n.endswith(".txt") for n in sources)
    texts = {archive.read(n).decode() for n in sources}
    assert texts == {text, "Be kind."}
    for name in sources:
        assert f'plainTextPath="internal://{name.removeprefix("sources/")}"' in qde
    assert qde.count("<User ") == 2
    assert qde.count("<PlainTextSelection ") == 3  # bob's empty coding: no Coding in it
    assert qde.count("<Coding ") == 3
    assert qde.count("<Case ") == 2
    assert f'endPosition="{len(text)}"' in qde
    assert "<TextValue>site-2</TextValue>" in qde
    assert 'typeOfVariable="Integer"' in qde


def test_a_project_without_answers_or_coders_is_still_valid() -> None:
    qdpx = project_qdpx(
        seed(), name="Empty", description="-", responses=[], codings=[], variables=VARIABLES
    )
    archive = zipfile.ZipFile(io.BytesIO(qdpx))
    assert archive.namelist() == ["project.qde"]
    project_schema().validate(archive.read("project.qde").decode())
