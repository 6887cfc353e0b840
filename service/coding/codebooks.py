"""Codebooks (contract §6): one per coded text question, replaced whole, kept in history."""

from collections.abc import Iterable
from typing import Literal, overload

from sqlalchemy import delete
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.codebooks import (
    Codebook,
    CodebookCategory,
    CodebookIn,
    CodebookPublic,
    CodebookRevision,
    CodebookRevisionPublic,
    CodebookTheme,
    ThemeIn,
)
from schemas.codings import CodingCategory
from schemas.events import EventType
from schemas.texts import LocalText, language_problems, localise, resolve
from service.errors import Conflict, FieldProblem, Invalid, NotFound, invalid_field
from service.events import outbox
from service.keys import Principal
from service.permissions import Action, require
from service.stats import cells
from service.validation import CompiledSurvey

Lock = Literal["share", "update"] | None


@overload
def codebook_row(
    session: Session, *, survey_id: str, question_id: str, lock: Lock = None
) -> Codebook: ...


@overload
def codebook_row(
    session: Session, *, survey_id: str, question_id: str, lock: Lock = None, missing_ok: bool
) -> Codebook | None: ...


def codebook_row(
    session: Session,
    *,
    survey_id: str,
    question_id: str,
    lock: Lock = None,
    missing_ok: bool = False,
) -> Codebook | None:
    """The codebook of a question: the one lookup, 404 when there is none (unless
    `missing_ok`). `lock` "share" keeps its categories while a coding of them is written;
    "update" is for replacing it (PostgreSQL; SQLite writers are serialised anyway)."""
    query = select(Codebook).where(
        col(Codebook.survey_id) == survey_id, col(Codebook.question_id) == question_id
    )
    if lock is not None:
        query = query.with_for_update(read=lock == "share")
    codebook = session.exec(query).first()
    if codebook is None and not missing_ok:
        raise NotFound(f"no codebook for question {question_id!r}")
    return codebook


def category_ids(session: Session, *, codebook_id: int | None) -> list[str]:
    """A codebook's category ids, in codebook order."""
    return list(
        session.exec(
            select(CodebookCategory.category_id)
            .where(CodebookCategory.codebook_id == codebook_id)
            .order_by(col(CodebookCategory.position))
        )
    )


def categories_in_use(
    session: Session, *, survey_id: str, question_id: str, categories: Iterable[str]
) -> list[str]:
    """Which of these categories a coding or consensus of the question holds."""
    wanted = sorted(set(categories))
    if not wanted:
        return []
    return list(
        session.execute(
            select(col(CodingCategory.category_id))
            .where(
                col(CodingCategory.survey_id) == survey_id,
                col(CodingCategory.question_id) == question_id,
                col(CodingCategory.category_id).in_(wanted),
            )
            .distinct()
            .order_by(col(CodingCategory.category_id))
        ).scalars()
    )


def _check_question(compiled: CompiledSurvey, question_id: str, data: CodebookIn) -> None:
    question = compiled.questions.get(question_id)
    if question is None:
        raise NotFound(f"survey {compiled.definition.id!r} has no question {question_id!r}")
    if question.type != "text":
        raise invalid_field(("question",), f"question {question_id!r} is not a text question")
    if data.question is not None and data.question != question_id:
        raise invalid_field(("question",), "the body's question differs from the path's")
    problems = language_problems(data, compiled.definition.languages)
    if problems:
        raise Invalid(
            "the codebook's texts do not hold the survey's languages",
            [FieldProblem(loc, msg) for loc, msg in problems],
        )


def _texts(**fields: LocalText | None) -> dict[str, LocalText] | None:
    """The texts given per language, to keep beside their default-language columns."""
    given: dict[str, LocalText] = {
        name: value for name, value in fields.items() if isinstance(value, dict)
    }
    return given or None


def _refuse_orphaning(session: Session, codebook: Codebook, data: CodebookIn) -> None:
    """Removing a category that a coding or consensus holds would orphan it: 409."""
    kept = {c.id for t in data.themes for c in t.categories}
    old = session.exec(
        select(CodebookCategory.category_id).where(CodebookCategory.codebook_id == codebook.id)
    ).all()
    in_use = categories_in_use(
        session,
        survey_id=codebook.survey_id,
        question_id=codebook.question_id,
        categories=set(old) - kept,
    )
    if in_use:
        raise Conflict(f"categories still used by codings: {', '.join(in_use)}")


def put_codebook(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    question_id: str,
    data: CodebookIn,
) -> CodebookPublic:
    """Create or replace the codebook of a text question, recording the revision."""
    require(principal, Action.edit_codebooks)
    _check_question(compiled, question_id, data)
    survey_id = compiled.definition.id
    codebook = codebook_row(
        session, survey_id=survey_id, question_id=question_id, lock="update", missing_ok=True
    )
    themes_before: dict[str, str] = {}
    if codebook is None:
        codebook = Codebook(survey_id=survey_id, question_id=question_id, updated_by=principal.name)
    else:
        _refuse_orphaning(session, codebook, data)
        rows = session.exec(
            select(CodebookCategory.category_id, CodebookCategory.theme_id).where(
                CodebookCategory.codebook_id == codebook.id
            )
        )
        themes_before = {category: theme for category, theme in rows}
        codebook.version += 1
        codebook.updated_at = utcnow()
        codebook.updated_by = principal.name
        session.execute(
            delete(CodebookCategory).where(col(CodebookCategory.codebook_id) == codebook.id)
        )
        session.execute(delete(CodebookTheme).where(col(CodebookTheme.codebook_id) == codebook.id))
    session.add(codebook)
    session.flush()
    assert codebook.id is not None
    position = 0
    for theme_position, theme in enumerate(data.themes):
        session.add(
            CodebookTheme(
                codebook_id=codebook.id,
                theme_id=theme.id,
                label=resolve(theme.label),
                domain=theme.domain.value if theme.domain else None,
                position=theme_position,
                texts=_texts(label=theme.label),
            )
        )
        for category in theme.categories:
            session.add(
                CodebookCategory(
                    codebook_id=codebook.id,
                    theme_id=theme.id,
                    category_id=category.id,
                    label=resolve(category.label),
                    description=None
                    if category.description is None
                    else resolve(category.description),
                    origin=category.origin.value,
                    keywords=category.keywords,
                    position=position,
                    texts=_texts(label=category.label, description=category.description),
                )
            )
            position += 1
    session.add(
        CodebookRevision(
            codebook_id=codebook.id,
            version=codebook.version,
            themes=[t.model_dump(mode="json") for t in data.themes],
            changed_by=principal.name,
            changed_at=codebook.updated_at,
        )
    )
    session.flush()
    themes_after = {c.id: t.id for t in data.themes for c in t.categories}
    if any(themes_after.get(c, t) != t for c, t in themes_before.items()):
        cells.rebuild_themes(session, compiled, question_id=question_id)
    outbox.emit(
        session,
        type=EventType.codebook_changed,
        survey=survey_id,
        data={"question": question_id},
    )
    return _public(session, codebook)


def codebook_of(
    session: Session, *, survey_id: str, question_id: str, lang: str | None = None
) -> CodebookPublic:
    """A question's codebook for internal use (theme statistics), without a role check,
    its texts plain strings in `lang` (None: the default language)."""
    found = _public(session, codebook_row(session, survey_id=survey_id, question_id=question_id))
    return localise(found, lang)


def _public(session: Session, codebook: Codebook) -> CodebookPublic:
    themes = session.exec(
        select(CodebookTheme)
        .where(CodebookTheme.codebook_id == codebook.id)
        .order_by(col(CodebookTheme.position))
    ).all()
    categories = session.exec(
        select(CodebookCategory)
        .where(CodebookCategory.codebook_id == codebook.id)
        .order_by(col(CodebookCategory.position))
    ).all()
    return CodebookPublic(
        survey=codebook.survey_id,
        question=codebook.question_id,
        version=codebook.version,
        updated_at=codebook.updated_at,
        updated_by=codebook.updated_by,
        themes=[
            ThemeIn.model_validate(
                {
                    "id": t.theme_id,
                    "label": (t.texts or {}).get("label", t.label),
                    "domain": t.domain,
                    "categories": [
                        {
                            "id": c.category_id,
                            "label": (c.texts or {}).get("label", c.label),
                            "description": (c.texts or {}).get("description", c.description),
                            "origin": c.origin,
                            "keywords": c.keywords,
                        }
                        for c in categories
                        if c.theme_id == t.theme_id
                    ],
                }
            )
            for t in themes
        ],
    )


def get_codebook(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    question_id: str,
    lang: str | None = None,
) -> CodebookPublic:
    """The codebook as stored, or (`lang` given, checked by the caller) with its texts
    plain strings in that language."""
    require(principal, Action.read_codebooks)
    found = _public(session, codebook_row(session, survey_id=survey_id, question_id=question_id))
    return found if lang is None else localise(found, lang)


def codebook_history(
    session: Session, *, principal: Principal, survey_id: str, question_id: str
) -> list[CodebookRevisionPublic]:
    """Every version of the codebook, oldest first, with who changed it and when."""
    require(principal, Action.edit_codebooks)
    codebook = codebook_row(session, survey_id=survey_id, question_id=question_id)
    revisions = session.exec(
        select(CodebookRevision)
        .where(CodebookRevision.codebook_id == codebook.id)
        .order_by(col(CodebookRevision.version))
    ).all()
    return [
        CodebookRevisionPublic(
            version=r.version, changed_at=r.changed_at, changed_by=r.changed_by, themes=r.themes
        )
        for r in revisions
    ]
