"""What a statistics request asks (contract §7 common parameters), checked against the
survey: which responses are in scope, how they are grouped, and the K of §7.5."""

from dataclasses import dataclass

from schemas import texts
from schemas.keys import Role
from schemas.surveys import Question
from service import languages
from service.errors import FieldProblem, Forbidden, Invalid
from service.keys import Principal
from service.permissions import Action, require
from service.stats import cells
from service.stats.tally import Scope
from service.validation import CompiledSurvey

READER_DETAIL = (
    "reader keys see published releases only, never live statistics (contract §7.6):"
    " GET /v1/surveys/{survey}/releases"
)


@dataclass(frozen=True)
class Level:
    """One value a table can show: its spelling in the cells, its label, and its JSON value."""

    key: str
    label: str
    value: bool | int | str


@dataclass(frozen=True)
class StatsQuery:
    scope: Scope
    by: str | None
    groups: tuple[Level, ...]
    min_cell: int | None
    lang: str | None = None  # the labels' language (None: a survey without languages)


def levels(question: Question, lang: str | None = None) -> tuple[Level, ...]:
    """A question's values in definition order (`true` then `false` for booleans), their
    labels in `lang` (None: the default language)."""
    if question.type == "boolean":
        return (
            Level("true", texts.phrase("Yes", lang), True),
            Level("false", texts.phrase("No", lang), False),
        )
    if question.type == "likert":
        return tuple(
            Level(str(p.value), texts.resolve(p.label, lang), p.value) for p in question.scale
        )
    if question.type in ("choice", "multi_choice"):
        return tuple(
            Level(o.value, texts.resolve(o.label, lang), o.value) for o in question.options
        )
    return ()


def _spelling(question: Question, raw: str) -> str | None:
    """The cell spelling of a filter value, or None if the question has no such value."""
    for level in levels(question):
        if level.key == raw or (question.type == "likert" and raw.strip() == level.key):
            return level.key
    return None


def _problem(loc: str, msg: str) -> Invalid:
    return Invalid("the statistics request is not valid", [FieldProblem(("query", loc), msg)])


def single_valued(compiled: CompiledSurvey, question_id: str, loc: str) -> Question:
    question = compiled.questions.get(question_id)
    if question is None:
        raise _problem(loc, f"the survey has no question {question_id!r}")
    if question.type not in cells.SINGLE:
        raise _problem(loc, f"{question_id!r} is not a choice, likert or boolean question")
    return question


def resolve(
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    sites: list[str],
    waves: list[str],
    filters: list[tuple[str, str]],
    by: str | None,
    min_cell: int | None,
    lang: str | None = None,
) -> StatsQuery:
    """Check a request and turn it into a scope; a site outside the key's sites is a 403.
    `lang` is the request's `?lang=` (checked here, after the key's right to ask)."""
    if principal.role == Role.reader:
        raise Forbidden(READER_DETAIL.format(survey=compiled.definition.id))
    require(principal, Action.read_statistics)
    definition = compiled.definition
    lang = languages.labels_language(definition, lang)
    if problems := compiled.unknown_filters(sites, waves):
        raise Invalid("the statistics request is not valid", problems)
    visible = principal.visible_sites(dict.fromkeys(sites))
    chosen: dict[str, list[str]] = {}
    for question_id, raw in filters:
        loc = f"q.{question_id}"
        question = single_valued(compiled, question_id, loc)
        key = _spelling(question, raw)
        if key is None:
            raise _problem(loc, f"{raw!r} is not a value of question {question_id!r}")
        chosen.setdefault(question_id, [])
        if key not in chosen[question_id]:
            chosen[question_id].append(key)
    groups: tuple[Level, ...] = ()
    if by == "site":
        groups = tuple(
            Level(s.id, texts.resolve(s.name, lang), s.id)
            for s in definition.sites
            if visible is None or s.id in visible
        )
    elif by == "wave":
        groups = tuple(
            Level(w.id, texts.resolve(w.name, lang), w.id)
            for w in definition.waves
            if not waves or w.id in waves
        )
    elif by is not None:
        groups = levels(single_valued(compiled, by, "by"), lang)
    scope = Scope(
        sites=tuple(visible) if visible is not None else None,
        waves=tuple(dict.fromkeys(waves)) if waves else None,
        filters=tuple((q, tuple(v)) for q, v in chosen.items()),
    )
    return StatsQuery(scope=scope, by=by, groups=groups, min_cell=min_cell, lang=lang)
