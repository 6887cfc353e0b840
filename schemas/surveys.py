"""Survey definitions (contract §4): the input model that validates them and the table."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from sqlalchemy import JSON, Column
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from schemas.base import Slug, StrictModel, UTCDateTime, utcnow

Label = Annotated[str, Field(min_length=1, max_length=500)]


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
    value: int = Field(strict=True)
    label: Label


class _QuestionBase(StrictModel):
    id: Slug
    text: Annotated[str, Field(min_length=1, max_length=4000)]
    required: bool = False


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
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)
    integer: bool = False

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min is not None and self.max is not None and self.max < self.min:
            _invalid_at(("max",), "max must not be below min", self.max)
        return self


class BooleanQuestion(_QuestionBase):
    type: Literal["boolean"]


class TextQuestion(_QuestionBase):
    type: Literal["text"]
    max_length: int = Field(default=4000, ge=1, le=100_000)


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
    sites: Annotated[list[Site], Field(min_length=1, max_length=1000)]
    waves: Annotated[list[Wave], Field(min_length=1, max_length=100)]
    questions: Annotated[list[Question], Field(min_length=1, max_length=1000)]

    @model_validator(mode="after")
    def _distinct_ids(self) -> Self:
        _distinct([s.id for s in self.sites], "site id", "sites", "id")
        _distinct([w.id for w in self.waves], "wave id", "waves", "id")
        _distinct([q.id for q in self.questions], "question id", "questions", "id")
        return self

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
