"""Every statistics endpoint as CSV (contract §1, §7): `text/csv`, a header of the JSON
field names (a leading `group` column with `by`), one line per table row and group,
holding exactly the JSON body's values; suppressed cells are empty."""

import csv
import io
import random
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.stats_support import (
    Headers,
    Json,
    Params,
    coded_data_set,
    get,
)
from tests.conftest import MakeKey, bearer

SURVEY = "trust"
Line = dict[str, str]


@pytest.fixture
def keys(client: TestClient, admin: Headers, make_key: MakeKey) -> dict[str, Headers]:
    coders = [bearer(make_key("evaluator", name=name)) for name in ("coder-a", "coder-b")]
    coded_data_set(client, admin, coders, SURVEY, random.Random(7), 50)
    return {"evaluator": coders[0], "suppressed": coders[1]}


def asked(role: str, params: Params) -> Params:
    """The suppressed key asks for `?min_cell=5` (contract §7.5), as readers once got."""
    return [*params, ("min_cell", "5")] if role == "suppressed" else params


def fetch_csv(client: TestClient, headers: Headers, path: str, params: Params) -> list[Line]:
    response = client.get(
        f"/v1/surveys/{SURVEY}/stats/{path}", params=[*params, ("format", "csv")], headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "text/csv"
    reader = csv.reader(io.StringIO(response.text, newline=""))
    header = next(reader)
    assert len(set(header)) == len(header), header
    lines = [dict(zip(header, line, strict=True)) for line in reader]
    assert lines, "a table has rows"
    return lines


def same(cell: str, value: Any) -> bool:
    """A CSV cell holds a JSON value: empty for null, true/false, numbers as numbers."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell == ("true" if value else "false")
    if isinstance(value, int):
        return cell == str(value)
    if isinstance(value, float):
        return float(cell) == value
    return bool(cell == value)


def scalars(table: Json) -> Json:
    return {k: v for k, v in table.items() if not isinstance(v, list | dict)}


def table_rows(body: Json, nested: str) -> Iterator[tuple[Any, Json, Json]]:
    """(group value or None, the table's fields, one row) for the whole scope then each
    group, as the CSV lines should come."""
    top = {k: v for k, v in scalars(body).items() if k not in ("by", "groups")}
    for r in body[nested]:
        yield None, top, r
    for group in body.get("groups") or []:
        fields = {**top, **{k: v for k, v in scalars(group).items() if k not in ("value", "label")}}
        for r in group[nested]:
            yield group["value"], fields, r


def check_lines(lines: list[Line], expected: list[Json], grouped: bool) -> None:
    assert len(lines) == len(expected)
    header = list(lines[0])
    assert (header[0] == "group") == grouped
    assert set(header) == set(expected[0]) | ({"group"} if grouped else set())
    for line, values in zip(lines, expected, strict=True):
        for name, value in values.items():
            assert same(line[name], value), (name, line[name], value)


PATHS = ["composition/role", "composition/agencies", "composition/involved"]
PATHS += ["likert/trust_confidence"]
GROUPINGS: list[Params] = [[], [("by", "site")], [("by", "involved"), ("q.role", "police")]]
GROUPINGS += [[("by", "trust_confidence")]]


@pytest.mark.parametrize("role", ["evaluator", "suppressed"])
def test_composition_and_likert(client: TestClient, keys: dict[str, Headers], role: str) -> None:
    check_wave_comparison(client, keys[role])
    blanked = 0
    for path in PATHS:
        for params in GROUPINGS:
            body = get(client, keys[role], path, asked(role, params))
            lines = fetch_csv(client, keys[role], path, asked(role, params))
            expected = []
            for group, fields, r in table_rows(body, "rows"):
                grouping = {"group": "" if group is None else group} if params else {}
                expected.append({**grouping, **fields, **r})
            check_lines(lines, expected, bool(params))
            if params:  # the whole scope's lines carry an empty group
                assert {line["group"] for line in lines[: len(body["rows"])]} == {""}
            if role == "suppressed":
                blank = [line for line in lines if line["suppressed"] == "true"]
                assert all(line["count"] == line["percent"] == "" for line in blank)
                blanked += len(blank)
    assert (blanked > 0) == (role == "suppressed")


def check_wave_comparison(client: TestClient, headers: Headers) -> None:
    params = [("wave", "midway"), ("wave", "final")]
    path = "likert/trust_confidence/compare"
    body = get(client, headers, path, params)
    lines = fetch_csv(client, headers, path, params)
    outer = scalars(body)
    expected = [{**outer, **scalars(side), **r} for side in body["waves"] for r in side["rows"]]
    assert len(lines) == 10
    check_lines(lines, expected, grouped=False)
    assert [line["wave"] for line in lines] == ["midway"] * 5 + ["final"] * 5


THEME_FIELDS = {  # a theme's fields, named apart from its categories' in CSV
    "id": "theme_id",
    "label": "theme_label",
    "respondents": "theme_respondents",
    "suppressed": "theme_suppressed",
}


@pytest.mark.parametrize("role", ["evaluator", "suppressed"])
def test_theme_table(client: TestClient, keys: dict[str, Headers], role: str) -> None:
    """One line per category, beside its theme's fields and the table's `n_*` counts."""
    for params in ([], [("by", "wave")], [("by", "role"), ("site", "site-1")]):
        body = get(client, keys[role], "themes/trust_actions", asked(role, params))
        lines = fetch_csv(client, keys[role], "themes/trust_actions", asked(role, params))
        expected = []
        for group, fields, theme in table_rows(body, "themes"):
            named = {THEME_FIELDS.get(k, k): v for k, v in scalars(theme).items()}
            grouping = {"group": "" if group is None else group} if params else {}
            for category in theme["categories"]:
                expected.append({**grouping, **fields, **named, **category})
        check_lines(lines, expected, bool(params))
