"""Survey definitions (contract §4): the input model that validates them and the table."""

import math
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, StrictBool, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy import JSON, Column
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow
from schemas.texts import Label, LongText, check_languages, check_texts

SAFE_INTEGER = 2**53  # beyond it, an integer no longer round-trips through a float column


class Site(StrictModel):
    id: Slug
    name: Label


class Wave(StrictModel):
    id: Slug
    name: Label
    opens_at: AwareDatetime | None = None
    closes_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window_in_order(self) -> Self:
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            _invalid_at(("closes_at",), "closes_at must be after opens_at", self.closes_at)
        return self


class Option(StrictModel):
    value: Slug
    label: Label


class ScalePoint(StrictModel):
    value: int = Field(strict=True, ge=-SAFE_INTEGER, le=SAFE_INTEGER)
    label: Label


class _QuestionBase(StrictModel):
    id: Slug
    text: LongText
    required: StrictBool = False


def _invalid_at(loc: tuple[str | int, ...], msg: str, value: object) -> None:
    """Fail validation at `loc` below the model being validated, so that the error names
    the offending field by its path (contract §1), not the whole object."""
    error = PydanticCustomError("value_error", msg)
    raise ValidationError.from_exception_data(
        "definition", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def _distinct(values: list[str] | list[int], what: str, field: str, key: str) -> None:
    """Fails at the first repeated value's own path, e.g. ("questions", 3, "id")."""
    seen: set[object] = set()
    for index, value in enumerate(values):
        if value in seen:
            _invalid_at((field, index, key), f"duplicate {what}: {value}", value)
        seen.add(value)


class ChoiceQuestion(_QuestionBase):
    type: Literal["choice"]
    options: Annotated[list[Option], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _distinct_options(self) -> Self:
        _distinct([o.value for o in self.options], "option value", "options", "value")
        return self


class MultiChoiceQuestion(ChoiceQuestion):
    type: Literal["multi_choice"]  # type: ignore[assignment]


class LikertQuestion(_QuestionBase):
    type: Literal["likert"]
    scale: Annotated[list[ScalePoint], Field(min_length=2, max_length=11)]

    @model_validator(mode="after")
    def _ascending_scale(self) -> Self:
        values = [p.value for p in self.scale]
        for index in range(1, len(values)):
            if values[index] <= values[index - 1]:
                _invalid_at(
                    ("scale", index, "value"),
                    "scale values must be distinct integers in ascending order",
                    values[index],
                )
        return self


class NumberQuestion(_QuestionBase):
    type: Literal["number"]
    min: float | None = Field(default=None, allow_inf_nan=False, strict=True)
    max: float | None = Field(default=None, allow_inf_nan=False, strict=True)
    integer: StrictBool = False

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min is not None and self.max is not None and self.max < self.min:
            _invalid_at(("max",), "max must not be below min", self.max)
        if self.integer:
            low, high = self.integer_bounds()
            if low > high:
                where = "max" if self.max is not None else "min"
                _invalid_at(
                    (where,),
                    f"no integer between -{SAFE_INTEGER} and {SAFE_INTEGER} lies within"
                    " min and max",
                    getattr(self, where),
                )
        return self

    def integer_bounds(self) -> tuple[int, int]:
        """The smallest and largest integer answer: the bounds rounded inwards and kept
        within +-2**53, so the validator is built from exact integers (a bound such as
        -3.68e154 made it unbuildable) and every admitted answer can be stored."""
        low = -SAFE_INTEGER if self.min is None else max(math.ceil(self.min), -SAFE_INTEGER)
        high = SAFE_INTEGER if self.max is None else min(math.floor(self.max), SAFE_INTEGER)
        return low, high


class BooleanQuestion(_QuestionBase):
    type: Literal["boolean"]


class TextQuestion(_QuestionBase):
    type: Literal["text"]
    max_length: int = Field(default=4000, ge=1, le=100_000, strict=True)


Question = Annotated[
    ChoiceQuestion
    | MultiChoiceQuestion
    | LikertQuestion
    | NumberQuestion
    | BooleanQuestion
    | TextQuestion,
    Field(discriminator="type"),
]


class SurveyDefinition(StrictModel):
    """What an admin posts; also what is stored and served back."""

    id: Slug
    title: Label
    languages: list[str] | None = Field(
        default=None,
        max_length=100,
        description="BCP 47 tags of the languages of its texts; the first is the default.",
    )
    sites: Annotated[list[Site], Field(min_length=1, max_length=1000)]
    waves: Annotated[list[Wave], Field(min_length=1, max_length=100)]
    questions: Annotated[list[Question], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _distinct_ids(self) -> Self:
        _distinct([s.id for s in self.sites], "site id", "sites", "id")
        _distinct([w.id for w in self.waves], "wave id", "waves", "id")
        _distinct([q.id for q in self.questions], "question id", "questions", "id")
        return self

    @model_validator(mode="after")
    def _languages(self) -> Self:
        check_languages(self.languages)
        check_texts(self, self.languages)
        return self

    def language(self, lang: str | None) -> str | None:
        """`lang` if the survey declares it, the default where `lang` is None; None for
        a survey without languages. The caller has checked `lang` (see `undeclared`)."""
        if not self.languages:
            return None
        return lang if lang is not None else self.languages[0]

    def undeclared(self, lang: str) -> str | None:
        """Why `lang` is not one of the survey's languages, or None if it is."""
        if not self.languages:
            return f"survey {self.id!r} declares no languages"
        if lang not in self.languages:
            return f"{lang!r} is not one of the survey's languages: {', '.join(self.languages)}"
        return None

    def site(self, site_id: str) -> Site | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def wave(self, wave_id: str) -> Wave | None:
        return next((w for w in self.waves if w.id == wave_id), None)

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


class SurveyPublic(SurveyDefinition):
    version: int
    created_at: datetime
    updated_at: datetime


class Survey(SQLModel, table=True):
    """A stored definition. `version` grows on every change so cached validators expire."""

    __tablename__ = "survey"

    id: str = SQLField(primary_key=True, max_length=64)
    title: str = SQLField(max_length=500)
    definition: dict[str, object] = SQLField(sa_column=Column(JSON, nullable=False))
    version: int = 1
    created_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)


class SurveySummary(BaseModel):
    id: str
    title: str
    version: int
    created_at: datetime
    updated_at: datetime
