"""Localised text (contract §4 "Languages"): the one home for texts in several languages.

A text a person reads (a survey's `title`, a site's or wave's `name`, a question's
`text`, an option's or scale point's `label`, a theme's or category's `label` and
`description`) is either a plain string, the same in every language, or an object of
one string per language the survey declares. Three pieces live here and nowhere else:

- `Label`, `LongText`, `Description`: the field types, which accept either shape;
- `check_texts(model, languages)`: every localised text of a definition or codebook
  holds exactly the declared languages (a 422 naming the field otherwise), and its
  object is put in declaration order, so that the default language comes first;
- `resolve(text, lang)` and `localise(model, lang)`: a text, or a whole model, in one
  language (`lang` None: the default, i.e. the object's first entry).
"""

from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

import langcodes
from pydantic import (
    BaseModel,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

LocalText = str | dict[str, str]
Loc = tuple[str | int, ...]
TEXT_FIELDS = frozenset({"title", "name", "text", "label", "description"})
Model = TypeVar("Model", bound=BaseModel)


def _fail(errors: list[tuple[Loc, str, object]]) -> None:
    raise ValidationError.from_exception_data(
        "text",
        [
            InitErrorDetails(type=PydanticCustomError("value_error", msg), loc=loc, input=value)
            for loc, msg, value in errors
        ],
    )


def _validator(max_length: int, min_length: int = 1) -> Any:
    """The check of a localised text whose strings are `min_length`..`max_length` long,
    each string checked exactly as a plain pydantic string field would be."""
    string = TypeAdapter(
        Annotated[str, Field(strict=True, min_length=min_length, max_length=max_length)]
    )

    def check_string(value: object, loc: Loc, errors: list[tuple[Loc, str, object]]) -> None:
        try:
            string.validate_python(value)
        except ValidationError as exc:
            errors += [(loc, e["msg"], value) for e in exc.errors(include_url=False)]

    def validate(value: object) -> LocalText:
        errors: list[tuple[Loc, str, object]] = []
        if isinstance(value, str):
            check_string(value, (), errors)
        elif isinstance(value, dict) and value:
            for lang, string in value.items():
                check_string(string, (str(lang),), errors)
        elif isinstance(value, dict):
            errors.append(((), "an object of texts needs one string per language", value))
        else:
            errors.append(((), "must be a string or an object of one string per language", value))
        if errors:
            _fail(errors)
        return value  # type: ignore[return-value]

    return PlainValidator(validate)


def _schema(max_length: int, min_length: int = 1) -> WithJsonSchema:
    string = {"type": "string", "minLength": min_length, "maxLength": max_length}
    return WithJsonSchema(
        {
            "anyOf": [
                string,
                {"type": "object", "additionalProperties": string, "minProperties": 1},
            ],
            "description": "A string, or an object of one string per declared language.",
        }
    )


Label = Annotated[LocalText, _validator(500), _schema(500)]
LongText = Annotated[LocalText, _validator(4000), _schema(4000)]
Description = Annotated[LocalText, _validator(4000, 0), _schema(4000, 0)]


def valid_tag(tag: str) -> bool:
    """A well-formed, valid BCP 47 tag (langcodes, not a home-made expression). langcodes
    also reads locale spellings such as `en_GB`, which BCP 47 does not allow."""
    if "_" in tag or tag != tag.strip():
        return False
    try:
        return bool(langcodes.tag_is_valid(tag))
    except (ValueError, TypeError):
        return False


def check_languages(languages: list[str] | None) -> None:
    """A non-empty list of distinct, valid BCP 47 tags (or None: no languages)."""
    if languages is None:
        return
    errors: list[tuple[Loc, str, object]] = []
    if not languages:
        errors.append((("languages",), "must list at least one language", languages))
    seen: set[str] = set()
    for index, tag in enumerate(languages):
        if not valid_tag(tag):
            errors.append((("languages", index), f"{tag!r} is not a valid BCP 47 tag", tag))
        elif tag.lower() in seen:
            errors.append((("languages", index), f"duplicate language: {tag}", tag))
        seen.add(tag.lower())
    if errors:
        _fail(errors)


def texts(model: BaseModel, loc: Loc = ()) -> Iterator[tuple[Loc, BaseModel, str, LocalText]]:
    """Every localised text below `model`: (path, owning model, field name, value)."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name in TEXT_FIELDS and isinstance(value, str | dict):
            yield (*loc, name), model, name, value
        elif isinstance(value, BaseModel):
            yield from texts(value, (*loc, name))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, BaseModel):
                    yield from texts(item, (*loc, name, index))


def language_problems(
    model: BaseModel, languages: list[str] | None, loc: Loc = ()
) -> list[tuple[Loc, str]]:
    """What is wrong with the languages of `model`'s texts, as (path, message); each
    object is also put in the order of `languages` (the default first)."""
    problems: list[tuple[Loc, str]] = []
    for path, owner, name, value in texts(model, loc):
        if not isinstance(value, dict):
            continue
        if not languages:
            problems.append(
                (path, "the survey declares no languages: give a plain string, or declare them")
            )
            continue
        problems += [
            ((*path, lang), f"{lang!r} is not one of the survey's languages")
            for lang in value
            if lang not in languages
        ]
        problems += [
            (path, f"missing language {lang!r}") for lang in languages if lang not in value
        ]
        if set(value) == set(languages):
            object.__setattr__(owner, name, {lang: value[lang] for lang in languages})
    return problems


def check_texts(model: BaseModel, languages: list[str] | None) -> None:
    """Fail validation (pydantic) at each text whose languages are not the declared ones."""
    problems = language_problems(model, languages)
    if problems:
        _fail([(loc, msg, None) for loc, msg in problems])


def resolve(text: LocalText, lang: str | None = None) -> str:
    """`text` in `lang`; a plain string is the same in every language, and `lang` None
    (or a language the text lacks) gives the default, the object's first entry."""
    if isinstance(text, str):
        return text
    if lang is not None and lang in text:
        return text[lang]
    return next(iter(text.values()))


def maybe(text: LocalText | None, lang: str | None = None) -> str | None:
    return None if text is None else resolve(text, lang)


def localise(model: Model, lang: str | None) -> Model:
    """A copy of `model` with every localised text a plain string in `lang`."""
    copy = model.model_copy(deep=True)
    for _, owner, name, value in list(texts(copy)):
        object.__setattr__(owner, name, resolve(value, lang))
    return copy


# hearme's own words beside a survey's labels (boolean values, chart axes), in the
# languages it knows; any other language gets them in English.
PHRASES: dict[str, dict[str, str]] = {
    "cy": {
        "Yes": "Ie",
        "No": "Na",
        "All responses": "Pob ymateb",
        "Percent of those who answered": "Canran y rhai a atebodd",
        "Respondents": "Ymatebwyr",
    },
}


def phrase(english: str, lang: str | None) -> str:
    """One of hearme's own phrases in `lang` (its primary language subtag), else English."""
    if lang is None:
        return english
    return PHRASES.get(lang.split("-")[0].lower(), {}).get(english, english)
