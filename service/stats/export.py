"""Statistics as CSV (contract §1, §7): one line per table row, columns named as the JSON
fields, a leading `group` column when the body is grouped. Table-level figures (n,
missing, mean, ...) repeat on each of their table's lines so every line stands alone."""

import copy
import csv
import io
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel


def _scalars(table: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if not isinstance(v, list | dict)}


def _table_lines(
    table: dict[str, Any], nested: str, *, context: dict[str, Any]
) -> Iterator[dict[str, Any]]:
    outer = {**context, **_scalars(table)}
    for row in table[nested]:
        yield {**outer, **row}


def lines(body: BaseModel | dict[str, Any], nested: str = "rows") -> Iterator[dict[str, Any]]:
    """The body's table rows as flat dicts, whole scope first, then each group. A body
    may come as a model or as its JSON (a release's stored table)."""
    data = copy.deepcopy(body) if isinstance(body, dict) else body.model_dump(mode="json")
    groups = data.pop("groups", None)
    grouped = data.pop("by", None) is not None
    head = {"question": data["question"]}
    whole = {"group": "", **head} if grouped else head
    yield from _table_lines(data, nested, context=whole)
    for group in groups or ():
        context = {"group": group.pop("value"), **head, **_scalars(data)}
        group.pop("label")
        yield from _table_lines(group, nested, context=context)


def comparison_lines(body: BaseModel) -> Iterator[dict[str, Any]]:
    data = body.model_dump(mode="json")
    waves = data.pop("waves")
    outer = _scalars(data)
    for side in waves:
        yield from _table_lines(side, "rows", context=outer)


def stream(records: Iterator[dict[str, Any]]) -> Iterator[bytes]:
    """CSV text, a header first; booleans as true/false and nulls as empty cells."""
    buffer = io.StringIO()
    writer: Any = None
    for record in records:
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(record), lineterminator="\r\n")
            writer.writeheader()
        writer.writerow({k: _cell(v) for k, v in record.items()})
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value


def theme_lines(body: BaseModel | dict[str, Any]) -> Iterator[dict[str, Any]]:
    """One line per category, beside its theme's figures (prefixed `theme_` where the
    names would clash) and the table's `n_*` counts."""
    for table in lines(body, nested="themes"):
        theme = {
            "theme_id": table.pop("id"),
            "theme_label": table.pop("label"),
            "domain": table.pop("domain"),
            "mentions": table.pop("mentions"),
            "theme_respondents": table.pop("respondents"),
            "percent_respondents": table.pop("percent_respondents"),
            "theme_suppressed": table.pop("suppressed"),
        }
        categories = table.pop("categories")
        for category in categories:
            yield {**table, **theme, **category}
