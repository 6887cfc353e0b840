"""A release's labels in each of its survey's languages (contract §7.6, §4 "Languages").

A release's figures are frozen at publication; so are its labels, in every language the
survey declares then (`labels_at_publication`), so that a later change of the
definition changes neither. Read in a language, a table is its stored body with the
labels of that language put in (`relabel`): counts, percentages and every other figure
are the stored ones, untouched. A release published before languages existed, or of a
survey without languages, has no such labels and is served as stored.
"""

import copy
import json
from typing import Any

from sqlmodel import Session

from schemas.texts import resolve
from service.coding.codebooks import codebook_of
from service.stats.query import levels
from service.validation import CompiledSurvey

Labels = dict[str, dict[str, str]]  # part ("rows", "groups", ...) -> key -> label


def _key(value: Any) -> str:
    return json.dumps(value)


def _table_labels(
    session: Session, compiled: CompiledSurvey, table: dict[str, Any], lang: str
) -> Labels:
    definition = compiled.definition
    question = compiled.questions[table["question"]]
    found: Labels = {"title": {"": resolve(question.text, lang)}}
    found["rows"] = {_key(level.value): level.label for level in levels(question, lang)}
    by = table.get("by")
    if by == "site":
        found["groups"] = {_key(s.id): resolve(s.name, lang) for s in definition.sites}
    elif by == "wave":
        found["groups"] = {_key(w.id): resolve(w.name, lang) for w in definition.waves}
    elif by is not None and by in compiled.questions:
        found["groups"] = {
            _key(level.value): level.label for level in levels(compiled.questions[by], lang)
        }
    if table["kind"] == "themes":
        codebook = codebook_of(session, survey_id=definition.id, question_id=question.id, lang=lang)
        found["themes"] = {t.id: resolve(t.label) for t in codebook.themes}
        found["categories"] = {
            c.id: resolve(c.label) for t in codebook.themes for c in t.categories
        }
    return found


def labels_at_publication(
    session: Session, compiled: CompiledSurvey, tables: list[dict[str, Any]]
) -> dict[str, dict[str, Labels]] | None:
    """{lang: {table id: labels}} for every declared language; None without languages."""
    languages = compiled.definition.languages
    if not languages:
        return None
    return {
        lang: {t["id"]: _table_labels(session, compiled, t, lang) for t in tables}
        for lang in languages
    }


def _put(items: list[dict[str, Any]], names: dict[str, str], field: str) -> None:
    for item in items:
        key = item[field] if field == "id" else _key(item[field])
        if key in names:
            item["label"] = names[key]


def relabel(table: dict[str, Any], labels: Labels | None) -> dict[str, Any]:
    """A copy of a stored table with its labels in another language; its figures as
    stored (None: the table itself)."""
    if labels is None:
        return table
    out = copy.deepcopy(table)
    _put(out.get("groups") or [], labels.get("groups", {}), "value")
    for body in (out, *(out.get("groups") or ())):
        _put(body.get("rows") or [], labels.get("rows", {}), "value")
        for theme in body.get("themes") or ():
            _put([theme], labels.get("themes", {}), "id")
            _put(theme.get("categories") or [], labels.get("categories", {}), "id")
    return out


def title(labels: Labels | None) -> str | None:
    """The table's question text in the labels' language, if the labels hold it."""
    return None if labels is None else labels.get("title", {}).get("")


def of_table(stored: dict[str, Any] | None, lang: str | None, table_id: str) -> Labels | None:
    """The stored labels of one table in `lang`, or None where there are none."""
    if stored is None or lang is None:
        return None
    found: Labels | None = stored.get(lang, {}).get(table_id)
    return found
