"""Which language a request or a submission is in (contract §4 "Languages").

One rule, used by every front door: a `lang` (or a submission's `language`) must be
one the survey declares, also on a survey that declares none (a 422 naming the field);
labels without `lang` are in the survey's default language.
"""

from collections.abc import Sequence

from schemas.surveys import SurveyDefinition
from service.errors import invalid_field

QUERY_LOC = ("query", "lang")


def checked(
    definition: SurveyDefinition, lang: str | None, *, loc: Sequence[str | int] = QUERY_LOC
) -> str | None:
    """`lang` itself if the survey declares it, None where it is None; else a 422 at `loc`."""
    if lang is None:
        return None
    why = definition.undeclared(lang)
    if why is not None:
        raise invalid_field(loc, why)
    return lang


def labels_language(definition: SurveyDefinition, lang: str | None) -> str | None:
    """The language of labels for a request with `lang`: that language (checked), the
    default where it is absent, None for a survey without languages (plain strings)."""
    return definition.language(checked(definition, lang))
