"""The `?lang=` query parameter (contract §4 "Languages"), checked against the survey."""

from typing import Annotated

from fastapi import Depends, Query

from api.deps import CompiledSurveyDep
from service import languages

LangQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Labels in this language, one the survey declares (default: its first).",
    ),
]


def labels_lang(compiled: CompiledSurveyDep, lang: LangQuery = None) -> str | None:
    """The language of the labels: `lang`, else the survey's default; None for a survey
    without languages. An undeclared `lang` is a 422 at ["query", "lang"]."""
    return languages.labels_language(compiled.definition, lang)


LabelsLang = Annotated[str | None, Depends(labels_lang)]
