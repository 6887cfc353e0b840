"""The coding workbench: one answer at a time with the codebook beside it (coder,
evaluator), and for evaluators the agreement of two coders and their discrepancies with
the consensus a click away. Blind: these screens show a coder its own work only."""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from api.deps import SessionDep
from api.web.dashboard import Compiled
from api.web.session import Csrf, Form, WebPrincipal, one, page, redirect
from schemas.base import SLUG_PATTERN
from schemas.codebooks import CodebookPublic
from schemas.codings import CodingIn
from schemas.suggestions import Suggestion
from service import workbench
from service.coding import codebooks, codings, pairs, suggestions
from service.errors import FieldProblem, Invalid
from service.responses import visible_response

router = APIRouter(prefix="/app/surveys/{survey}", include_in_schema=False)

QuestionId = Annotated[str, Path(pattern=SLUG_PATTERN)]
# The keys of the categories, in codebook order; Enter saves, n is left for "next".
KEYS = "1234567890qwertyuiopasdfghjklzxcvbm"


def keyed(codebook: CodebookPublic) -> list[dict[str, Any]]:
    """The codebook by theme, each category with its key (none past the 35th)."""
    themes, position = [], 0
    for theme in codebook.themes:
        entries = []
        for category in theme.categories:
            key = KEYS[position] if position < len(KEYS) else None
            entries.append({"category": category, "key": key})
            position += 1
        themes.append({"theme": theme, "categories": entries})
    return themes


def segments(text: str, found: list[Suggestion]) -> list[tuple[str, bool]]:
    """The answer cut into pieces, True where a suggested keyword occurs."""
    marks = sorted((s.start, s.end) for f in found for s in f.spans)
    pieces, at = [], 0
    for start, end in marks:
        if end <= at:
            continue
        start = max(start, at)
        if start > at:
            pieces.append((text[at:start], False))
        pieces.append((text[start:end], True))
        at = end
    if at < len(text):
        pieces.append((text[at:], False))
    return pieces


@router.get("/code/{question}")
def web_code(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    question: QuestionId,
    second: Annotated[bool, Query()] = False,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """The next answer this key has not coded (with `second`, one another coder has)."""
    survey_id = compiled.definition.id
    items, next_cursor = codings.queue(
        session,
        principal=principal,
        survey_id=survey_id,
        question_id=question,
        coded_by_other=second,
        limit=1,
        cursor=cursor,
    )
    codebook = codebooks.get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question
    )
    item = items[0] if items else None
    found: list[Suggestion] = []
    if item is not None:
        request.state.audit_target = item.response_id
        found = suggestions.suggest_for_text(principal, codebook=codebook, text=item.text)
    done = workbench.progress(
        session, principal=principal, survey_id=survey_id, question_id=question
    )
    return page(
        request,
        "code.html",
        principal,
        survey=compiled.definition,
        question=compiled.questions[question],
        item=item,
        pieces=segments(item.text, found) if item else [],
        suggested={s.category for s in found},
        themes=keyed(codebook),
        progress=done,
        second=second,
        skip=next_cursor,
    )


@router.post("/code/{question}", dependencies=[Csrf])
def web_code_save(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    question: QuestionId,
    fields: Form,
) -> Response:
    """Save this key's coding of one answer, then on to the next."""
    response_id = one(fields, "response_id")
    request.state.audit_target = response_id
    codings.put_coding(
        session,
        principal=principal,
        survey_id=compiled.definition.id,
        response_id=response_id,
        question_id=question,
        data=_coding(fields),
    )
    second = "?second=1" if one(fields, "second") == "1" else ""
    return redirect(f"/app/surveys/{compiled.definition.id}/code/{question}{second}")


def _coding(fields: dict[str, list[str]]) -> CodingIn:
    try:
        return CodingIn.model_validate({"categories": fields.get("category", [])})
    except ValueError as exc:
        problem = FieldProblem(("category",), "not a list of distinct category ids")
        raise Invalid("the coding is not valid", [problem]) from exc


@router.get("/review/{question}")
def web_review(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    question: QuestionId,
    coders: Annotated[str | None, Query(max_length=401)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> HTMLResponse:
    """Two coders' agreement and their discrepancies, each with its answer (evaluator,
    admin)."""
    survey_id = compiled.definition.id
    names = workbench.coders(
        session, principal=principal, survey_id=survey_id, question_id=question
    )
    if coders is None and len(names) >= 2:
        coders = f"{names[0]},{names[1]}"
    codebook = codebooks.get_codebook(
        session, principal=principal, survey_id=survey_id, question_id=question
    )
    labels = {c.id: c.label for t in codebook.themes for c in t.categories}
    agreement, items, next_cursor = None, [], None
    if coders:
        agreement = pairs.coder_agreement(
            session, principal=principal, survey_id=survey_id, question_id=question, coders=coders
        )
        found, next_cursor = pairs.discrepancies(
            session,
            principal=principal,
            survey_id=survey_id,
            question_id=question,
            coders=coders,
            limit=20,
            cursor=cursor,
        )
        for d in found:
            response = visible_response(
                session, principal, survey_id=survey_id, response_id=d.response_id
            )
            items.append({"d": d, "text": response.answers.get(question) or ""})
    return page(
        request,
        "review.html",
        principal,
        survey=compiled.definition,
        question=compiled.questions[question],
        names=names,
        coders=coders,
        pair=coders.split(",") if coders else None,
        agreement=agreement,
        items=items,
        labels=labels,
        next_cursor=next_cursor,
    )


@router.post("/review/{question}/consensus", dependencies=[Csrf])
def web_consensus(
    request: Request,
    session: SessionDep,
    principal: WebPrincipal,
    compiled: Compiled,
    question: QuestionId,
    fields: Form,
) -> Response:
    """Set an answer's consensus to the set chosen (one click), then back to the list."""
    response_id = one(fields, "response_id")
    request.state.audit_target = response_id
    codings.put_consensus(
        session,
        principal=principal,
        survey_id=compiled.definition.id,
        response_id=response_id,
        question_id=question,
        data=_coding(fields),
    )
    back = f"/app/surveys/{compiled.definition.id}/review/{question}"
    coders = one(fields, "coders")
    return redirect(f"{back}?{urlencode({'coders': coders})}" if coders else back)
