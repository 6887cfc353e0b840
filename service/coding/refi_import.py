"""`import.qdpx` (contract §10): codings made in a QDA tool, read back from a REFI-QDA
project such as `export.qdpx` writes.

The way back for `export.qdpx`: two coders code the exported answers in QualCoder, NVivo,
ATLAS.ti or MAXQDA, each as their own user, and hearme then computes agreement and the
theme table from their codings. Matching:

* a text source is a response when its GUID is the one `export.qdpx` gave that answer, or
  its name is the response's id (a tool that renames GUIDs keeps names);
* a code is a category of the codebook by GUID, else by name (its label, or its id);
* the coder of a coding is the name of its creating user (the selection's when the coding
  names none); a selection without codings is that coder's empty coding;
* the selections of the user `hearme consensus` are the consensus sets.

For each response and coder found, the set of categories that coder applied to the source
becomes that coder's coding, replacing theirs. All or nothing: a code used by a coding that
matches no category is a 422 listing every such code, and nothing is stored; with
`dry_run` nothing is stored either, and the answer says what would change.

The archive is untrusted: only `project.qde` is read, never more than `MAX_PROJECT_BYTES`
of it whatever the zip declares (a zip bomb is a 413), and the XML is parsed with
defusedxml with any DTD refused (see `refi.py`).
"""

import zipfile
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO
from xml.etree.ElementTree import Element

from sqlalchemy import select
from sqlmodel import Session, col

from schemas.codebooks import CodebookPublic
from schemas.codings import Coding, Consensus
from schemas.responses import Response
from schemas.texts import resolve
from service.coding import codebooks
from service.coding.codings import recompute_outcome, store_coding, store_consensus
from service.coding.refi import Q, _parse, category_guid, guid, qualifier
from service.coding.refi_project import CONSENSUS_USER, PROJECT_NS
from service.errors import FieldProblem, Invalid, NotFound, TooLarge, invalid_field
from service.keys import Principal
from service.permissions import Action, require
from service.surveys import load_compiled
from service.validation import CompiledSurvey

PROJECT_MEMBER = "project.qde"
MAX_PROJECT_BYTES = 256 * 1024 * 1024
MAX_CODER_NAME = 200
BODY = "body"


@dataclass
class ProjectCodings:
    """What a project file says: per source (by GUID and name), per user, the codes applied."""

    users: dict[str, str] = field(default_factory=dict)  # user GUID -> name
    codes: dict[str, str] = field(default_factory=dict)  # code GUID -> name
    # (source guid, source name) -> user name -> code GUIDs
    applied: dict[tuple[str, str], dict[str, set[str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ImportResult:
    responses: int
    coders: list[str]
    codings: int
    unchanged: int
    consensus: int
    unmatched_sources: list[str]
    dry_run: bool


def _guid(value: str | None) -> str:
    return (value or "").strip().strip("{}").lower()


def read_project(data: IO[bytes]) -> bytes:
    """The `project.qde` of a `.qdpx` archive, read under a cap."""
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise invalid_field((BODY,), f"not a .qdpx (zip) archive: {exc}", "qdpx_invalid") from exc
    with archive:
        try:
            info = archive.getinfo(PROJECT_MEMBER)
        except KeyError:
            raise invalid_field(
                (BODY, PROJECT_MEMBER), "the archive holds no project.qde", "missing"
            ) from None
        if info.file_size > MAX_PROJECT_BYTES:
            raise TooLarge(f"project.qde inflates to more than {MAX_PROJECT_BYTES} bytes")
        try:
            with archive.open(info) as member:
                content = member.read(MAX_PROJECT_BYTES + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as exc:
            raise invalid_field(
                (BODY, PROJECT_MEMBER), f"project.qde cannot be read: {exc}", "qdpx_invalid"
            ) from exc
    if len(content) > MAX_PROJECT_BYTES:  # the zip declared less than it held
        raise TooLarge(f"project.qde inflates to more than {MAX_PROJECT_BYTES} bytes")
    return content


def _codes(parent: Element | None, q: Q, into: dict[str, str]) -> None:
    """GUID -> name of every code, at any depth."""
    if parent is None:
        return
    for code in parent.iterfind(q("Code")):
        into[_guid(code.get("guid"))] = (code.get("name") or "").strip()
        _codes(code, q, into)


def parse_project(content: bytes) -> ProjectCodings:
    """The users, codes and codings of a project file (pure)."""
    root = _parse(content)
    q = qualifier(PROJECT_NS)
    if root.tag != q("Project"):
        raise invalid_field(
            (BODY, PROJECT_MEMBER),
            f"the root element must be Project in the namespace {PROJECT_NS}",
        )
    found = ProjectCodings()
    for user in root.iterfind(f"{q('Users')}/{q('User')}"):
        found.users[_guid(user.get("guid"))] = (user.get("name") or "").strip()
    book = root.find(q("CodeBook"))
    _codes(book.find(q("Codes")) if book is not None else None, q, found.codes)

    def user_name(guid_: str | None) -> str:
        key = _guid(guid_)
        return found.users.get(key) or key

    for source in root.iter(q("TextSource")):
        key = (_guid(source.get("guid")), (source.get("name") or "").strip())
        by_user = found.applied.setdefault(key, {})
        for selection in source.iter(q("PlainTextSelection")):
            selector = user_name(selection.get("creatingUser"))
            codings = list(selection.iterfind(q("Coding")))
            if not codings:
                by_user.setdefault(selector, set())
            for coding in codings:
                coder = (
                    user_name(coding.get("creatingUser"))
                    if coding.get("creatingUser")
                    else selector
                )
                ref = coding.find(q("CodeRef"))
                target = _guid(ref.get("targetGUID")) if ref is not None else ""
                by_user.setdefault(coder, set()).add(target)
    return found


def match_codes(project: ProjectCodings, codebook: CodebookPublic) -> dict[str, str]:
    """Code GUID -> category id for every code a coding uses; 422 listing those that match
    no category (by GUID, else by name: the label or the id)."""
    by_guid = {
        category_guid(codebook.survey, codebook.question, c.id): c.id
        for t in codebook.themes
        for c in t.categories
    }
    by_name: dict[str, str] = {}
    for theme in codebook.themes:
        for known in theme.categories:
            by_name.setdefault(resolve(known.label).strip().casefold(), known.id)
            by_name.setdefault(known.id.casefold(), known.id)
    used = {
        code for users in project.applied.values() for codes in users.values() for code in codes
    }
    matched: dict[str, str] = {}
    unknown: list[str] = []
    for code in sorted(used):
        name = project.codes.get(code, "")
        category = by_guid.get(code) or by_name.get(name.casefold())
        if category is None:
            unknown.append(name or code)
        else:
            matched[code] = category
    if unknown:
        raise Invalid(
            f"{len(unknown)} codes match no category of the codebook",
            [
                FieldProblem(
                    (BODY, PROJECT_MEMBER, "Code", name), "matches no category", "unknown_code"
                )
                for name in sorted(set(unknown))
            ],
        )
    return matched


def _answered(
    session: Session, survey_id: str, question_id: str, principal: Principal
) -> Iterator[Response]:
    query = select(Response).where(col(Response.survey_id) == survey_id)
    sites = principal.visible_sites()
    if sites is not None:
        query = query.where(col(Response.site).in_(sites))
    for response in session.execute(query.order_by(col(Response.pk))).scalars():
        text = response.answers.get(question_id)
        if isinstance(text, str) and text.strip():
            yield response


def import_into_question(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    question_id: str,
    data: IO[bytes],
    dry_run: bool = False,
) -> ImportResult:
    """`import_project` into the survey as it stands in this unit of work (the upload has
    arrived whole before it opens)."""
    compiled = load_compiled(session, survey_id=survey_id, for_write=True)
    return import_project(
        session, compiled, principal=principal, question_id=question_id, data=data, dry_run=dry_run
    )


def import_project(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    question_id: str,
    data: IO[bytes],
    dry_run: bool = False,
) -> ImportResult:
    require(principal, Action.import_projects)
    survey_id = compiled.definition.id
    if question_id not in compiled.questions:
        raise NotFound(f"survey {survey_id!r} has no question {question_id!r}")
    codebook = codebooks.get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question_id
    )
    project = parse_project(read_project(data))
    categories = match_codes(project, codebook)
    long = [u for users in project.applied.values() for u in users if len(u) > MAX_CODER_NAME]
    if long:
        raise invalid_field(
            (BODY, PROJECT_MEMBER, "Users"), f"a user name is longer than {MAX_CODER_NAME}"
        )
    by_guid: dict[str, Response] = {}
    by_id: dict[str, Response] = {}
    for response in _answered(session, survey_id, question_id, principal):
        by_guid[guid(survey_id, question_id, "source", response.id)] = response
        by_id[response.id] = response
    wanted: dict[int, tuple[Response, dict[str, list[str]]]] = {}
    unmatched: list[str] = []
    for (source_guid, source_name), users in project.applied.items():
        found = by_guid.get(source_guid) or by_id.get(source_name)
        if found is None:
            unmatched.append(source_name or source_guid)
            continue
        assert found.pk is not None
        sets = wanted.setdefault(found.pk, (found, defaultdict(list)))[1]
        for user, codes in users.items():
            sets[user] = sorted(set(sets[user]) | {categories[c] for c in codes})
    return _apply(session, question_id, wanted, principal, dry_run, sorted(unmatched))


def _current(
    session: Session, question_id: str, pks: list[int]
) -> tuple[dict[tuple[int, str], list[str]], dict[int, list[str]]]:
    codings: dict[tuple[int, str], list[str]] = {}
    consensus: dict[int, list[str]] = {}
    for start in range(0, len(pks), 1000):
        chunk = pks[start : start + 1000]
        for pk, coder, cats in session.execute(
            select(col(Coding.response_pk), col(Coding.coder), col(Coding.categories)).where(
                col(Coding.response_pk).in_(chunk), col(Coding.question_id) == question_id
            )
        ):
            codings[(pk, coder)] = sorted(cats)
        for pk, cats in session.execute(
            select(col(Consensus.response_pk), col(Consensus.categories)).where(
                col(Consensus.response_pk).in_(chunk), col(Consensus.question_id) == question_id
            )
        ):
            consensus[pk] = sorted(cats)
    return codings, consensus


def _apply(
    session: Session,
    question_id: str,
    wanted: Mapping[int, tuple[Response, Mapping[str, list[str]]]],
    principal: Principal,
    dry_run: bool,
    unmatched: list[str],
) -> ImportResult:
    codings, agreed = _current(session, question_id, sorted(wanted))
    coders: set[str] = set()
    changed = unchanged = consensus = 0
    for pk, (response, sets) in wanted.items():
        touched = False
        for user, cats in sorted(sets.items()):
            if user == CONSENSUS_USER:
                if agreed.get(pk) == cats:
                    continue
                consensus += 1
                touched = True
                if not dry_run:
                    store_consensus(
                        session,
                        response=response,
                        question_id=question_id,
                        set_by=principal.name,
                        categories=cats,
                    )
                continue
            coders.add(user)
            if codings.get((pk, user)) == cats:
                unchanged += 1
                continue
            changed += 1
            touched = True
            if not dry_run:
                store_coding(
                    session, response=response, question_id=question_id, coder=user, categories=cats
                )
        if touched and not dry_run:
            recompute_outcome(session, response=response, question_id=question_id)
    return ImportResult(
        responses=len(wanted),
        coders=sorted(coders),
        codings=changed,
        unchanged=unchanged,
        consensus=consensus,
        unmatched_sources=unmatched,
        dry_run=dry_run,
    )
