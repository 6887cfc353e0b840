"""REFI-QDA codebooks (`.qdc`, namespace urn:QDA-XML:codebook:1.0): export and import.

The exchange format of NVivo, ATLAS.ti, MAXQDA and QualCoder knows codes (a name, a GUID, a
description, child codes) and sets of codes, nothing else. A codebook maps onto it thus:

* each theme is a top-level, non-codable code; each of its categories a codable child code;
  labels are the codes' names;
* GUIDs are UUID 5 of the survey, question, kind and id, so a re-export is identical and a
  tool that keeps GUIDs hands back codes we recognise;
* what REFI-QDA has no place for (the ids, the keywords) rides in the last line of the code's
  description, `hearme: {"id": ..., "keywords": [...]}`, which the import strips again;
* a theme's domain and a category's origin are sets ("Domain: being", "Origin: inductive"),
  which the tools show and let a researcher change.

Imported XML is parsed with defusedxml and any DTD is refused, so entity expansion ("billion
laughs") and external entities never happen.
"""

import json
import re
import unicodedata
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import ValidationError
from sqlmodel import Session

from schemas.codebooks import CodebookIn, CodebookPublic, Domain, Origin
from schemas.texts import maybe, resolve
from service.coding import codebooks
from service.errors import FieldProblem, Invalid, NotFound, invalid_field
from service.keys import Principal
from service.permissions import Action, require
from service.validation import CompiledSurvey

CODEBOOK_NS = "urn:QDA-XML:codebook:1.0"
ORIGIN = "hearme"
TRAILER = "hearme: "
_GUIDS = uuid.uuid5(uuid.NAMESPACE_URL, "urn:hearme:refi-qda")
_DOMAIN_SET = "Domain: "
_ORIGIN_SET = "Origin: "

Q = Callable[[str], str]


def guid(*parts: str) -> str:
    """A stable GUID for the thing `parts` names (survey, question, kind, id...)."""
    return str(uuid.uuid5(_GUIDS, "/".join(parts)))


def theme_guid(survey_id: str, question_id: str, theme_id: str) -> str:
    return guid(survey_id, question_id, "theme", theme_id)


def category_guid(survey_id: str, question_id: str, category_id: str) -> str:
    return guid(survey_id, question_id, "category", category_id)


def qualifier(namespace: str) -> Q:
    return lambda tag: f"{{{namespace}}}{tag}"


# --- export ------------------------------------------------------------------------------


def _description(element: ET.Element, text: str | None, extra: dict[str, Any]) -> None:
    trailer = TRAILER + json.dumps(extra, ensure_ascii=False)
    ET.SubElement(element, "Description").text = f"{text}\n\n{trailer}" if text else trailer


def add_codes(parent: ET.Element, codebook: CodebookPublic) -> None:
    """The `Codes` of a codebook, under `parent` (a CodeBook of either namespace)."""
    codes = ET.SubElement(parent, "Codes")
    for theme in codebook.themes:
        theme_code = ET.SubElement(
            codes,
            "Code",
            guid=theme_guid(codebook.survey, codebook.question, theme.id),
            name=resolve(theme.label),
            isCodable="false",
        )
        _description(theme_code, None, {"id": theme.id})
        for category in theme.categories:
            code = ET.SubElement(
                theme_code,
                "Code",
                guid=category_guid(codebook.survey, codebook.question, category.id),
                name=resolve(category.label),
                isCodable="true",
            )
            _description(
                code,
                maybe(category.description),
                {"id": category.id, "keywords": category.keywords},
            )


def code_sets(codebook: CodebookPublic) -> list[tuple[str, str, str, list[str]]]:
    """(guid, name, description, member code GUIDs) of the domain and origin sets in use."""
    sets = []
    for domain in Domain:
        members = [
            theme_guid(codebook.survey, codebook.question, t.id)
            for t in codebook.themes
            if t.domain == domain
        ]
        if members:
            what = f"Themes of the {domain.value} domain (Knowing, Being, Doing)."
            sets.append(
                (
                    guid(codebook.survey, codebook.question, "domain", domain.value),
                    _DOMAIN_SET + domain.value,
                    what,
                    members,
                )
            )
    for origin in Origin:
        members = [
            category_guid(codebook.survey, codebook.question, c.id)
            for t in codebook.themes
            for c in t.categories
            if c.origin == origin
        ]
        if members:
            what = f"Categories of {origin.value} origin."
            sets.append(
                (
                    guid(codebook.survey, codebook.question, "origin", origin.value),
                    _ORIGIN_SET + origin.value,
                    what,
                    members,
                )
            )
    return sets


# Characters XML 1.0 cannot carry at all, not even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def to_bytes(root: ET.Element) -> bytes:
    """The document, indented, in UTF-8. Elements are written with plain tags under a root
    that declares the default namespace (`xmlns=`), so every element is in it. Control
    characters that XML cannot represent are dropped rather than written broken."""
    for element in root.iter():
        if element.text:
            element.text = _NOT_XML.sub("", element.text)
        for key, value in element.attrib.items():
            element.attrib[key] = _NOT_XML.sub("", value)
    ET.indent(root)
    return (
        b'<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode").encode()
    )


def add_sets(root: ET.Element, codebook: CodebookPublic, *, member_attribute: str) -> None:
    """The domain and origin sets; a member names its code by `guid` in a codebook file
    and by `targetGUID` in a project file (the two schemas differ there)."""
    sets = code_sets(codebook)
    if sets:
        sets_element = ET.SubElement(root, "Sets")
        for set_guid, name, description, members in sets:
            element = ET.SubElement(sets_element, "Set", guid=set_guid, name=name)
            ET.SubElement(element, "Description").text = description
            for member in members:
                ET.SubElement(element, "MemberCode", {member_attribute: member})


def codebook_qdc(codebook: CodebookPublic) -> bytes:
    """The codebook as a REFI-QDA codebook file."""
    root = ET.Element("CodeBook", xmlns=CODEBOOK_NS, origin=ORIGIN)
    add_codes(root, codebook)
    add_sets(root, codebook, member_attribute="guid")
    return to_bytes(root)


def export_codebook(
    session: Session, *, principal: Principal, survey_id: str, question_id: str
) -> bytes:
    """A stored codebook as `.qdc`, for whoever may read it."""
    codebook = codebooks.get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question_id
    )
    return codebook_qdc(codebook)


# --- import ------------------------------------------------------------------------------

BODY = "body"
_FIELD_IN_XML = {
    "id": "Description",  # an id that can be wrong comes from the hearme line
    "label": "@name",
    "description": "Description",
    "keywords": "Description",
    "origin": "Sets",
    "domain": "Sets",
    "categories": "Code",
}


def slugify(name: str) -> str:
    """An id from a code's name: ASCII, lower case, runs of anything else as `_`."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    slug = re.sub(r"[^a-z0-9]+", "_", folded).strip("_")[:64].rstrip("_")
    return slug or "code"


def _name_the_nameless(items: list[dict[str, Any]]) -> None:
    """Give each item without an id one from its label, unique among the items' ids."""
    taken = {item["id"] for item in items if item["id"]}
    for item in items:
        if item["id"]:
            continue
        slug = candidate = slugify(item["label"])
        n = 1
        while candidate in taken:
            n += 1
            candidate = slug[: 64 - len(f"_{n}")] + f"_{n}"
        taken.add(candidate)
        item["id"] = candidate


def _parse(data: bytes) -> ET.Element:
    try:
        root: ET.Element = SafeET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise invalid_field(
            (BODY,), f"refused: the XML declares a DTD or entities ({type(exc).__name__})"
        ) from exc
    except ET.ParseError as exc:
        raise invalid_field((BODY,), f"not well-formed XML: {exc}", "xml_invalid") from exc
    return root


def _trailer(element: ET.Element, q: Q, loc: list[str | int]) -> tuple[str | None, dict[str, Any]]:
    """The human description of a code and the hearme data of its trailer line, if any."""
    description = element.find(q("Description"))
    text = (description.text or "") if description is not None else ""
    lines = text.rstrip().split("\n")
    extra: dict[str, Any] = {}
    if lines and lines[-1].startswith(TRAILER):
        try:
            loaded = json.loads(lines[-1][len(TRAILER) :])
        except ValueError:
            loaded = None
        if not isinstance(loaded, dict):
            raise invalid_field([*loc, "Description"], "the hearme line is not a JSON object")
        extra = loaded
        lines = lines[:-1]
        if not isinstance(extra.get("id", ""), str):
            raise invalid_field([*loc, "Description"], "the hearme line's id must be a string")
    human = "\n".join(lines).strip()
    return human or None, extra


def _guid_of(element: ET.Element) -> str:
    return (element.get("guid") or "").strip("{}").lower()


def _memberships(root: ET.Element, q: Q) -> tuple[dict[str, str], dict[str, str]]:
    """Domain of each theme GUID and origin of each category GUID, from the sets."""
    domains: dict[str, str] = {}
    origins: dict[str, str] = {}
    for element in root.iterfind(f"{q('Sets')}/{q('Set')}"):
        name = (element.get("name") or "").strip()
        for prefix, values, into in (
            (_DOMAIN_SET, {d.value for d in Domain}, domains),
            (_ORIGIN_SET, {o.value for o in Origin}, origins),
        ):
            value = name[len(prefix) :].strip().lower()
            if name.lower().startswith(prefix.lower()) and value in values:
                for member in element.iterfind(q("MemberCode")):
                    into[_guid_of(member)] = value
    return domains, origins


def _name(element: ET.Element, loc: list[str | int]) -> str:
    name = (element.get("name") or "").strip()
    if not name:
        raise invalid_field([*loc, "@name"], "a code needs a name")
    return name


def _xml_loc(loc: Iterable[str | int]) -> list[str | int]:
    """Where in the file a field of CodebookIn came from."""
    parts = list(loc)
    xml: list[str | int] = [BODY, "Codes"]
    if parts[:1] == ["themes"] and len(parts) >= 2:
        xml += ["Code", parts[1]]
        rest = parts[2:]
        if rest[:1] == ["categories"] and len(rest) >= 2:
            xml += ["Code", rest[1]]
            rest = rest[2:]
        if rest and isinstance(rest[0], str):
            xml.append(_FIELD_IN_XML.get(rest[0], rest[0]))
    return xml


def parse_qdc(data: bytes, *, known: Mapping[str, str] | None = None) -> CodebookIn:
    """A codebook from a REFI-QDA codebook file.

    Top-level codes become themes, their child codes categories; deeper codes are refused.
    Ids come from the hearme line of a description, else from `known` (GUID -> id, the
    GUIDs this codebook exports), else from the name, made unique.
    """
    known = known or {}
    root = _parse(data)
    q = qualifier(CODEBOOK_NS)
    if root.tag != q("CodeBook"):
        raise invalid_field(
            (BODY,), f"the root element must be CodeBook in the namespace {CODEBOOK_NS}"
        )
    codes = root.find(q("Codes"))
    if codes is None:
        raise invalid_field((BODY, "Codes"), "a codebook needs a Codes element")
    domains, origins = _memberships(root, q)
    themes: list[dict[str, Any]] = []
    for i, theme_code in enumerate(codes.iterfind(q("Code"))):
        loc: list[str | int] = [BODY, "Codes", "Code", i]
        _, extra = _trailer(theme_code, q, loc)
        categories = []
        for j, code in enumerate(theme_code.iterfind(q("Code"))):
            code_loc = [*loc, "Code", j]
            if code.find(q("Code")) is not None:
                raise invalid_field(
                    [*code_loc, "Code"], "codes nest two levels deep: themes and categories"
                )
            description, details = _trailer(code, q, code_loc)
            categories.append(
                {
                    "id": details.get("id") or known.get(_guid_of(code)),
                    "label": _name(code, code_loc),
                    "description": description,
                    "origin": origins.get(_guid_of(code), Origin.deductive.value),
                    "keywords": details.get("keywords", []),
                }
            )
        themes.append(
            {
                "id": extra.get("id") or known.get(_guid_of(theme_code)),
                "label": _name(theme_code, loc),
                "domain": domains.get(_guid_of(theme_code)),
                "categories": categories,
            }
        )
    _name_the_nameless(themes)
    _name_the_nameless([c for t in themes for c in t["categories"]])
    try:
        return CodebookIn.model_validate({"themes": themes})
    except ValidationError as exc:
        problems = [
            FieldProblem(
                tuple(_xml_loc(err["loc"])),
                f"{err['msg']} (at {'.'.join(str(p) for p in err['loc']) or 'the codebook'})",
                err["type"],
            )
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise Invalid("the codebook file does not make a valid codebook", problems) from exc


def known_guids(codebook: CodebookPublic | None) -> dict[str, str]:
    """GUID -> id of every theme and category a codebook exports."""
    if codebook is None:
        return {}
    found = {}
    for theme in codebook.themes:
        found[theme_guid(codebook.survey, codebook.question, theme.id)] = theme.id
        for category in theme.categories:
            found[category_guid(codebook.survey, codebook.question, category.id)] = category.id
    return found


def import_codebook(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    question_id: str,
    data: bytes,
) -> CodebookPublic:
    """Replace a question's codebook with a `.qdc` file's, as PUT does (history, 409)."""
    require(principal, Action.edit_codebooks)
    survey_id = compiled.definition.id
    if question_id not in compiled.questions:
        raise NotFound(f"survey {survey_id!r} has no question {question_id!r}")
    try:
        current: CodebookPublic | None = codebooks.get_codebook(
            session, principal=principal, survey_id=survey_id, question_id=question_id
        )
    except NotFound:
        current = None
    parsed = parse_qdc(data, known=known_guids(current))
    return codebooks.put_codebook(
        session, compiled, principal=principal, question_id=question_id, data=parsed
    )
