"""What a release is served as: the whole release, or one table, as JSON or CSV.

Every format works from the stored tables, never from live data. For a new format
(charts, HTML: contract §10), `table_body` gives a table's stored §7 body with its
request fields, `as_stats_body` the same as the live statistics model of its kind (so
that code written for live bodies renders release tables too), and `release_body` the
release whole.
"""

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel

from schemas.releases import Release, ReleasePublic, ReleaseSummary
from schemas.stats import Composition, Likert, Themes
from service.errors import NotFound
from service.releases import labels
from service.stats import export

MODELS: dict[str, type[BaseModel]] = {
    "composition": Composition,
    "likert": Likert,
    "themes": Themes,
}
REQUEST_FIELDS = ("id", "kind", "site", "wave", "q", "withheld")


def summary(release: Release) -> ReleaseSummary:
    return ReleaseSummary(
        id=release.id,
        title=release.title,
        published_at=release.published_at,
        n_responses=release.n_responses,
    )


def tables_in(release: Release, lang: str | None = None) -> list[dict[str, Any]]:
    """The stored tables, labelled in `lang` where the release holds its labels."""
    return [
        labels.relabel(t, labels.of_table(release.labels, lang, t["id"])) for t in release.tables
    ]


def release_body(release: Release, lang: str | None = None) -> ReleasePublic:
    return ReleasePublic(
        id=release.id,
        title=release.title,
        published_at=release.published_at,
        min_cell=release.min_cell,
        n_responses=release.n_responses,
        tables=tables_in(release, lang),
    )


def table_body(release: Release, table_id: str, lang: str | None = None) -> dict[str, Any]:
    for table in release.tables:
        if table["id"] == table_id:
            return labels.relabel(table, labels.of_table(release.labels, lang, table_id))
    raise NotFound(f"release {release.id!r} has no table {table_id!r}")


def table_title(release: Release, table_id: str, lang: str | None) -> str | None:
    """The question text of a table as published in `lang`, if the release holds it."""
    return labels.title(labels.of_table(release.labels, lang, table_id))


def as_stats_body(table: dict[str, Any]) -> BaseModel:
    """The table as the live statistics body of its kind (request fields dropped)."""
    return MODELS[table["kind"]].model_validate(table)


def table_lines(table: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A table's CSV lines, as the live statistics' CSV has them (contract §7)."""
    body = {k: v for k, v in table.items() if k not in REQUEST_FIELDS}
    if table["kind"] == "themes":
        return export.theme_lines(body)
    return export.lines(body)


def release_lines(release: Release, lang: str | None = None) -> Iterator[dict[str, Any]]:
    """Every table's lines in one file, a leading `table` column naming the table; the
    header is the union of the tables' columns (empty where a table has no such one)."""
    records = [
        {"table": table["id"], **line}
        for table in tables_in(release, lang)
        for line in table_lines(table)
    ]
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    return iter([{c: record.get(c) for c in columns} for record in records])
