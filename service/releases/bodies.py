"""A release table's body as published: its true §7 body with the audit's cells null.

Beyond the cells themselves (contract §7.6): a percentage is null wherever its count
or its base is; a body (the whole scope or one group) with a suppressed row publishes
its mean, median, top2 and bottom2 as null, since they could give the row away; a
theme's `mentions` is null when any of its categories is. What stays published is then
a function of published counts only, which is why the audit need not model it.
"""

from typing import Any

from service.releases.profiles import Path, write
from service.stats.numbers import percent

FIGURES = ("mean", "median", "top2_percent", "bottom2_percent")


def freeze(table: dict[str, Any], hidden: set[Path], *, withheld: bool) -> dict[str, Any]:
    """The published body of `table` (a true body with its request fields)."""
    for path in hidden:
        write(table, path, None)
    bodies = [table, *(table.get("groups") or ())]
    for body in bodies:
        if table["kind"] == "themes":
            _themes(body)
        else:
            _rows(body)
    if withheld:
        table["withheld"] = True
    return table


def _share(count: int | None, base: int | None) -> float | None:
    return percent(count, base) if count is not None and base else None


def _rows(body: dict[str, Any]) -> None:
    n = body["n"]
    for row in body["rows"]:
        row["percent"] = _share(row["count"], n)
        row["suppressed"] = row["count"] is None
    if "mean" in body and (n is None or any(r["count"] is None for r in body["rows"])):
        for name in FIGURES:
            body[name] = None


def _themes(body: dict[str, Any]) -> None:
    base = body["n_coded"]
    for theme in body["themes"]:
        for category in theme["categories"]:
            category["percent"] = _share(category["respondents"], base)
            category["suppressed"] = category["respondents"] is None
        counts = [c["respondents"] for c in theme["categories"]]
        theme["mentions"] = None if None in counts else sum(counts)
        theme["percent_respondents"] = _share(theme["respondents"], base)
        theme["suppressed"] = theme["respondents"] is None
