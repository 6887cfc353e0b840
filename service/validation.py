"""Answer validation: one pydantic validator per survey version, built from its definition.

Each question becomes a typed field (strict: `"4"`, `4.0` and `true` are not the
integer 4), so every rule of contract §5 is a declared constraint rather than a
hand-written check, and pydantic reports every offending field at once.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from schemas.surveys import (
    BooleanQuestion,
    ChoiceQuestion,
    LikertQuestion,
    MultiChoiceQuestion,
    NumberQuestion,
    Question,
    SurveyDefinition,
    TextQuestion,
)
from service.errors import FieldProblem, Invalid

CLOCK_SKEW = timedelta(minutes=5)


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("text must not contain a NUL character")
    return value


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("values must be distinct")
    return values


def _one_of(allowed: list[int]) -> Callable[[int], int]:
    allowed_set = frozenset(allowed)
    shown = ", ".join(str(v) for v in allowed)

    def check(value: int) -> int:
        if value not in allowed_set:
            raise ValueError(f"must be one of the scale's values: {shown}")
        return value

    return check


def _blank(value: Any) -> bool:
    """Contract §5: a null, an empty or all-whitespace text, an empty list is no answer."""
    return value is None or value == [] or (isinstance(value, str) and not value.strip())


def _field_type(question: Question) -> Any:
    """The pydantic type of one answer. Every type admits None: a null is no answer."""
    match question:
        case MultiChoiceQuestion():
            option = Literal[tuple(o.value for o in question.options)]  # type: ignore[valid-type]
            return Annotated[list[option], AfterValidator(_distinct)] | None  # type: ignore[valid-type]
        case ChoiceQuestion():
            return Literal[tuple(o.value for o in question.options)] | None
        case LikertQuestion():
            points = [p.value for p in question.scale]
            return Annotated[StrictInt, AfterValidator(_one_of(points))] | None
        case NumberQuestion() if question.integer:
            low, high = question.integer_bounds()
            return Annotated[StrictInt, Field(ge=low, le=high)] | None
        case NumberQuestion():
            return (
                Annotated[
                    float, Field(strict=True, allow_inf_nan=False, ge=question.min, le=question.max)
                ]
                | None
            )
        case BooleanQuestion():
            return StrictBool | None
        case TextQuestion():
            return (
                Annotated[
                    StrictStr,
                    StringConstraints(strip_whitespace=True, max_length=question.max_length),
                    AfterValidator(_no_nul),
                ]
                | None
            )
    raise AssertionError(f"unhandled question type {question.type}")


@dataclass(frozen=True)
class CompiledSurvey:
    """A survey definition with its answers model, ready to validate submissions."""

    definition: SurveyDefinition
    version: int
    validator: TypeAdapter[dict[str, Any]]
    questions: dict[str, Question]
    site_ids: frozenset[str]
    # The stored row's `created_at`: with the version, which survey this was compiled from
    # (an id and version may be reused after a deletion); None when not from a stored row.
    stamp: object = None

    def validate_answers(
        self, answers: dict[str, Any]
    ) -> tuple[dict[str, Any], list[FieldProblem]]:
        """The answers as stored (blanks dropped, text stripped), and every problem found."""
        problems: list[FieldProblem] = []
        try:
            parsed = self.validator.validate_python(answers)
        except ValidationError as exc:
            for err in exc.errors(include_url=False, include_input=False):
                loc = ("answers", *err["loc"])
                msg = "unknown question id" if err["type"] == "extra_forbidden" else err["msg"]
                problems.append(FieldProblem(loc, msg, err["type"]))
            parsed = {}
        cleaned = {qid: v for qid, v in parsed.items() if not _blank(v)}
        flagged = {p.loc[1] for p in problems if len(p.loc) > 1}
        for qid, question in self.questions.items():
            if question.required and qid not in flagged and _blank(answers.get(qid)):
                problems.append(FieldProblem(("answers", qid), "an answer is required", "missing"))
        return cleaned, problems

    def unknown_filters(self, sites: Sequence[str], waves: Sequence[str]) -> list[FieldProblem]:
        """Problems with a read's `?site=` and `?wave=` filters: one home for the rule that a
        filter naming no site or wave of the survey is a 422 (listing, statistics, exports),
        not an empty answer that reads as "nobody responded"."""
        return [
            FieldProblem(("query", "site"), f"unknown site {s!r}", "unknown_site")
            for s in sites
            if s not in self.site_ids
        ] + [
            FieldProblem(("query", "wave"), f"unknown wave {w!r}", "unknown_wave")
            for w in waves
            if self.definition.wave(w) is None
        ]

    def check_envelope(
        self, *, site: str, wave: str, submitted_at: datetime | None, received_at: datetime
    ) -> list[FieldProblem]:
        problems: list[FieldProblem] = []
        if site not in self.site_ids:
            problems.append(FieldProblem(("site",), f"unknown site {site!r}", "unknown_site"))
        if self.definition.wave(wave) is None:
            problems.append(FieldProblem(("wave",), f"unknown wave {wave!r}", "unknown_wave"))
        if submitted_at is not None and submitted_at > received_at + CLOCK_SKEW:
            problems.append(
                FieldProblem(
                    ("submitted_at",),
                    "submitted_at is more than five minutes after the time of receipt",
                    "in_future",
                )
            )
        return problems


def compile_survey(
    definition: SurveyDefinition, version: int, stamp: object = None
) -> CompiledSurvey:
    """Build the answers validator, or fail with a 422 naming the question that cannot
    be built (a definition that does not compile is refused at the door, never stored).

    The answers are a TypedDict keyed by question id, not a model with one attribute per
    question: ids are data, and one named `model_config` or `schema` would clash with a
    model's own attributes.
    """
    fields: dict[str, Any] = {}
    for index, question in enumerate(definition.questions):
        try:
            field_type = _field_type(question)
            TypeAdapter(field_type)
        except Exception as exc:  # pydantic's SchemaError and kin: a definition we cannot use
            raise Invalid(
                "the survey definition cannot be compiled",
                [FieldProblem(("questions", index), f"cannot be compiled: {type(exc).__name__}")],
            ) from exc
        fields[question.id] = NotRequired[field_type]
    answers = TypedDict(f"Answers_{definition.id}_{version}", fields, total=False)  # type: ignore[misc]
    answers.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return CompiledSurvey(
        definition=definition,
        version=version,
        validator=TypeAdapter(answers),  # type: ignore[arg-type]
        questions={q.id: q for q in definition.questions},
        site_ids=frozenset(s.id for s in definition.sites),
        stamp=stamp,
    )


class CompiledCache:
    """Compiled surveys per (id, version, stamp), shared by the threads of one process.

    A definition only changes with its version, so an entry never goes stale; other
    processes see the new version in the database and compile it themselves. The stamp
    (the row's `created_at`) tells apart two surveys that reuse an id and version, e.g.
    after the row was deleted and created again, or in another database.
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: dict[tuple[str, int, object], CompiledSurvey] = {}
        self._latest: dict[str, CompiledSurvey] = {}
        self._lock = threading.Lock()

    def get(self, survey_id: str, version: int, stamp: object = None) -> CompiledSurvey | None:
        compiled = self._entries.get((survey_id, version, stamp))
        if compiled is not None:
            self._latest[survey_id] = compiled
        return compiled

    def latest(self, survey_id: str) -> CompiledSurvey | None:
        """The version of the survey this process last found current: possibly stale, so
        only for checks that the transaction repeats (`service.submissions`)."""
        return self._latest.get(survey_id)

    def put(self, compiled: CompiledSurvey, stamp: object = None) -> None:
        with self._lock:
            if len(self._entries) >= self._size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[(compiled.definition.id, compiled.version, stamp)] = compiled
            self._latest[compiled.definition.id] = compiled
