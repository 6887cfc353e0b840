"""REFI-QDA projects (`.qdpx`): one coded question's answers, for a QDA tool.

A `.qdpx` is a zip of `project.qde` (XML, namespace urn:QDA-XML:project:1.0) and the
sources' text files under `sources/`. Here each answer is a text source; each coder is a
user; each coder's coding of an answer is a selection of the whole answer carrying one
coding per category, made by that user; each response is a case whose variables are its
site, its wave and the chosen closed questions (by default `role`), so that a researcher can
compare coders and slice by site in NVivo, ATLAS.ti, MAXQDA or QualCoder. An empty coding
("codable, no category") is a selection without codings, and the consensus sets are the
selections of the user `hearme consensus`, so that `import.qdpx` gets everything back.
GUIDs and zip entry times are derived, never random, so exporting the same data twice gives
the same file.
"""

import io
import xml.etree.ElementTree as ET
import zipfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from schemas.codebooks import CodebookPublic
from schemas.codings import Coding, Consensus
from schemas.responses import Response
from schemas.surveys import (
    BooleanQuestion,
    ChoiceQuestion,
    LikertQuestion,
    MultiChoiceQuestion,
    NumberQuestion,
)
from schemas.texts import resolve
from service.coding import codebooks
from service.coding.refi import add_codes, add_sets, category_guid, guid, to_bytes
from service.errors import FieldProblem, Invalid, NotFound
from service.keys import Principal
from service.permissions import Action, require
from service.validation import CompiledSurvey

PROJECT_NS = "urn:QDA-XML:project:1.0"
# The user whose selections are the consensus sets: not a valid key name (it has a space),
# so it can never be mistaken for a coder; import.qdpx reads its selections back as the
# consensus.
CONSENSUS_USER = "hearme consensus"
DEFAULT_VARIABLES = ("role",)
SOURCES_DIR = "sources"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)

Value = tuple[str, str]  # (the element of VariableValue, its text)


@dataclass(frozen=True)
class CaseVariable:
    name: str
    kind: str  # typeOfVariable
    description: str
    value: Callable[[Response], Value | None]


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _decimal(number: float) -> str:
    return f"{Decimal(str(number)):f}"


def _question_variable(question: Any) -> CaseVariable | None:
    """The case variable of a closed question, or None for a question that cannot be one."""
    qid = question.id

    def answer(response: Response) -> Any:
        return response.answers.get(qid)

    if isinstance(question, MultiChoiceQuestion):
        labels = {o.value: resolve(o.label) for o in question.options}
        return CaseVariable(
            qid,
            "Text",
            resolve(question.text),
            lambda r: (
                ("TextValue", "; ".join(labels.get(str(v), str(v)) for v in a))
                if isinstance(a := answer(r), list) and a
                else None
            ),
        )
    if isinstance(question, ChoiceQuestion):
        labels = {o.value: resolve(o.label) for o in question.options}
        return CaseVariable(
            qid,
            "Text",
            resolve(question.text),
            lambda r: ("TextValue", labels.get(a, a)) if isinstance(a := answer(r), str) else None,
        )
    if isinstance(question, LikertQuestion):
        return CaseVariable(
            qid,
            "Integer",
            resolve(question.text),
            lambda r: ("IntegerValue", str(int(a))) if (a := answer(r)) is not None else None,
        )
    if isinstance(question, NumberQuestion):
        if question.integer:
            return CaseVariable(
                qid,
                "Integer",
                resolve(question.text),
                lambda r: ("IntegerValue", str(int(a))) if (a := answer(r)) is not None else None,
            )
        return CaseVariable(
            qid,
            "Float",
            resolve(question.text),
            lambda r: ("FloatValue", _decimal(a)) if (a := answer(r)) is not None else None,
        )
    if isinstance(question, BooleanQuestion):
        return CaseVariable(
            qid,
            "Boolean",
            resolve(question.text),
            lambda r: (
                ("BooleanValue", "true" if a else "false")
                if isinstance(a := answer(r), bool)
                else None
            ),
        )
    return None


def case_variables(compiled: CompiledSurvey, question_ids: Sequence[str]) -> list[CaseVariable]:
    """Site and wave, then the named closed questions; 422 for any other name."""
    variables = [
        CaseVariable("site", "Text", "The site of the response.", lambda r: ("TextValue", r.site)),
        CaseVariable("wave", "Text", "The survey wave.", lambda r: ("TextValue", r.wave)),
    ]
    problems = []
    for qid in dict.fromkeys(question_ids):
        if qid in ("site", "wave"):
            continue
        question = compiled.questions.get(qid)
        variable = _question_variable(question) if question is not None else None
        if variable is None:
            problems.append(
                FieldProblem(
                    ("query", "variable"),
                    f"{qid!r} is not a closed question of this survey (choice, multi_choice, "
                    "likert, number or boolean)",
                )
            )
        else:
            variables.append(variable)
    if problems:
        raise Invalid("unknown case variables", problems)
    return variables


def _users(root: ET.Element, coders: Sequence[str]) -> None:
    if coders:
        users = ET.SubElement(root, "Users")
        for coder in coders:
            ET.SubElement(users, "User", guid=guid("user", coder), name=coder, id=coder)


def _variables(root: ET.Element, survey_id: str, variables: Sequence[CaseVariable]) -> None:
    element = ET.SubElement(root, "Variables")
    for variable in variables:
        v = ET.SubElement(
            element,
            "Variable",
            guid=guid(survey_id, "variable", variable.name),
            name=variable.name,
            typeOfVariable=variable.kind,
        )
        ET.SubElement(v, "Description").text = variable.description


def _cases(
    root: ET.Element,
    survey_id: str,
    question_id: str,
    answered: Sequence[Response],
    variables: Sequence[CaseVariable],
) -> None:
    cases = ET.SubElement(root, "Cases")
    for response in answered:
        case = ET.SubElement(
            cases, "Case", guid=guid(survey_id, "case", response.id), name=response.id
        )
        for variable in variables:
            found = variable.value(response)
            if found is None:
                continue
            tag, text = found
            value = ET.SubElement(case, "VariableValue")
            ET.SubElement(
                value, "VariableRef", targetGUID=guid(survey_id, "variable", variable.name)
            )
            ET.SubElement(value, tag).text = text
        ET.SubElement(
            case, "SourceRef", targetGUID=guid(survey_id, question_id, "source", response.id)
        )


def _sources(
    root: ET.Element,
    codebook: CodebookPublic,
    answered: Sequence[Response],
    codings: dict[int, list[Coding]],
) -> dict[str, str]:
    """The TextSource elements; returns the text of each source file by its zip path."""
    survey_id, question_id = codebook.survey, codebook.question
    known = {c.id for t in codebook.themes for c in t.categories}
    files: dict[str, str] = {}
    sources = ET.SubElement(root, "Sources")
    for response in answered:
        text: str = response.answers[question_id]
        source_guid = guid(survey_id, question_id, "source", response.id)
        files[f"{SOURCES_DIR}/{source_guid}.txt"] = text
        source = ET.SubElement(
            sources,
            "TextSource",
            guid=source_guid,
            name=response.id,
            plainTextPath=f"internal://{source_guid}.txt",
            creationDateTime=_timestamp(response.received_at),
        )
        assert response.pk is not None
        for coding in codings.get(response.pk, []):
            # an empty coding ("codable, no category") is a selection without codings
            categories = [c for c in coding.categories if c in known]
            user = guid("user", coding.coder)
            when = _timestamp(coding.coded_at)
            selection = ET.SubElement(
                source,
                "PlainTextSelection",
                guid=guid(survey_id, question_id, "selection", response.id, coding.coder),
                name=coding.coder,
                startPosition="0",
                endPosition=str(len(text)),
                creatingUser=user,
                creationDateTime=when,
            )
            for category in categories:
                element = ET.SubElement(
                    selection,
                    "Coding",
                    guid=guid(
                        survey_id, question_id, "coding", response.id, coding.coder, category
                    ),
                    creatingUser=user,
                    creationDateTime=when,
                )
                ET.SubElement(
                    element, "CodeRef", targetGUID=category_guid(survey_id, question_id, category)
                )
    return files


def project_qdpx(
    codebook: CodebookPublic,
    *,
    name: str,
    description: str,
    responses: Sequence[Response],
    codings: Sequence[Coding],
    variables: Sequence[CaseVariable],
) -> bytes:
    """The `.qdpx` of the answers among `responses` and their `codings`."""
    answered = [
        r
        for r in responses
        if isinstance(text := r.answers.get(codebook.question), str) and text.strip()
    ]
    by_response: dict[int, list[Coding]] = defaultdict(list)
    for coding in codings:
        by_response[coding.response_pk].append(coding)
    coders = sorted({c.coder for c in codings})
    root = ET.Element("Project", xmlns=PROJECT_NS, name=name, origin="hearme")
    _users(root, coders)
    add_codes(ET.SubElement(root, "CodeBook"), codebook)
    _variables(root, codebook.survey, variables)
    if answered:
        _cases(root, codebook.survey, codebook.question, answered, variables)
        files = _sources(root, codebook, answered, by_response)
    else:
        files = {}
    add_sets(root, codebook, member_attribute="targetGUID")
    ET.SubElement(root, "Description").text = description
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        entries = {"project.qde": to_bytes(root), **{p: t.encode() for p, t in files.items()}}
        for path, content in entries.items():
            info = zipfile.ZipInfo(path, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


def export_project(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    question_id: str,
    variables: Sequence[str] = (),
) -> bytes:
    """The answers to a coded question, with every coder's codings, as `.qdpx`; a site-bound
    key exports its sites only."""
    require(principal, Action.export_projects)
    survey_id = compiled.definition.id
    question = compiled.questions.get(question_id)
    if question is None:
        raise NotFound(f"survey {survey_id!r} has no question {question_id!r}")
    codebook = codebooks.get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question_id
    )
    if not variables:
        variables = [
            v
            for v in DEFAULT_VARIABLES
            if v in compiled.questions and _question_variable(compiled.questions[v])
        ]
    chosen = case_variables(compiled, variables)
    sites = principal.visible_sites()
    responses = select(Response).where(col(Response.survey_id) == survey_id)
    codings = (
        select(Coding)
        .join(Response, col(Response.pk) == col(Coding.response_pk))
        .where(col(Coding.survey_id) == survey_id, col(Coding.question_id) == question_id)
    )
    if sites is not None:
        responses = responses.where(col(Response.site).in_(sites))
        codings = codings.where(col(Response.site).in_(sites))
    agreed = (
        select(Consensus)
        .join(Response, col(Response.pk) == col(Consensus.response_pk))
        .where(col(Consensus.survey_id) == survey_id, col(Consensus.question_id) == question_id)
    )
    if sites is not None:
        agreed = agreed.where(col(Response.site).in_(sites))
    consensus = [
        Coding(
            response_pk=c.response_pk,
            survey_id=c.survey_id,
            question_id=c.question_id,
            coder=CONSENSUS_USER,
            categories=c.categories,
            coded_at=c.set_at,
        )
        for c in session.exec(agreed.order_by(col(Consensus.response_pk)))
    ]
    return project_qdpx(
        codebook,
        name=f"{resolve(compiled.definition.title)} ({question_id})",
        description=resolve(question.text),
        responses=session.exec(responses.order_by(col(Response.pk))).all(),
        codings=[
            *session.exec(codings.order_by(col(Coding.response_pk), col(Coding.coder))).all(),
            *consensus,
        ],
        variables=chosen,
    )
