"""Chart specifications and rendering (contract §10), behind `charts`: one Vega-Lite v5
specification per table kind, built with Altair, rendered to SVG or PNG by vl-convert (no
browser). Imported on the first chart only, so that Altair does not slow every process's
start.

`chart_spec(kind, body)` is a pure function of a §7 table body as JSON (a live table or a
release's table, which have the same shape), so whatever serves a table can chart it:

* composition: horizontal bars of percentages, one bar per value (per group with `by`);
* likert: a stacked bar of percentages per group (one bar without `by`), scale order;
* compare: the same stacked bars, one per wave, side by side;
* themes: bars of category respondents, grouped by theme (and by group with `by`).

A suppressed cell (§7.5) is never drawn as a zero: a bar's suppressed value is drawn as a
grey dashed bar across the axis labelled "suppressed", and in a stacked Likert bar the
suppressed points share one grey segment, as wide as what the published points leave
(the published figures already give that much away, never more). A table whose base is
suppressed is one grey bar, labelled so.
"""

import re
from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import vl_convert

from schemas.texts import phrase
from service.exports.kinds import ChartKind, ImageFormat

VEGA_LITE = "5.20"  # the schema Altair 5 writes, and the one vl-convert renders it with
WIDTH = 420
BAR = 22
SUPPRESSED = "suppressed"
GREY = "#d9d9d9"
FONT = "Liberation Sans, Arial, Helvetica, sans-serif"
PALETTE = "#4c78a8"
LIKERT_SCHEME = "redyellowblue"
LABEL_LIMIT = 340


def _whole_label(lang: str | None) -> str:
    return phrase("All responses", lang)


def _tables(body: Mapping[str, Any], lang: str | None) -> list[tuple[str, Mapping[str, Any]]]:
    """(group label, table) of the whole scope, then of each group of `by`."""
    found: list[tuple[str, Mapping[str, Any]]] = [(_whole_label(lang), body)]
    for group in body.get("groups") or ():
        found.append((str(group["label"]), group))
    return found


def _n_text(n: Any) -> str:
    return "n suppressed" if n is None else f"n={n}"


def _percent_text(row: Mapping[str, Any]) -> str:
    if row.get("suppressed") or row.get("count") is None:
        return SUPPRESSED
    return f"{_pct(row.get('percent'))} ({row['count']})"


def _pct(value: Any) -> str:
    """A published percentage; an empty base (0) has none."""
    return "no base" if value is None else f"{value:.1f}%"


def _hidden_text(group: str, grouped: bool) -> str:
    return f"{group}: {SUPPRESSED}" if grouped else SUPPRESSED


def _base(values: list[dict[str, Any]]) -> alt.Chart:
    return alt.Chart(alt.Data(values=values))  # type: ignore[no-untyped-call]


def _config(chart: Any, title: str | None, subtitle: str | None) -> dict[str, Any]:
    if title:
        chart = chart.properties(title=alt.Title(title, subtitle=subtitle or "", anchor="start"))
    chart = chart.configure(font=FONT).configure_view(stroke=None)
    spec: dict[str, Any] = chart.to_dict(validate=True)
    return spec


def _bars(
    values: list[dict[str, Any]],
    *,
    measure: str,
    measure_title: str,
    category_title: str,
    grouped: bool,
    domain_max: float,
) -> alt.LayerChart:
    """Horizontal bars of `measure` by `category`, suppressed ones as dashed grey bars."""
    # An explicit order: layers with their own transforms lose a sort by field.
    order = list(dict.fromkeys(v["category"] for v in sorted(values, key=lambda v: v["order"])))
    y = alt.Y(
        "category:N",
        sort=order,
        title=category_title,
        axis=alt.Axis(labelLimit=LABEL_LIMIT),
    )
    x = alt.X(
        f"{measure}:Q", title=measure_title, scale=alt.Scale(domain=[0, domain_max], nice=True)
    )
    encodings: dict[str, Any] = {"y": y}
    if grouped:
        groups = list(dict.fromkeys(v["group"] for v in values))
        encodings["yOffset"] = alt.YOffset("group:N", sort=groups)
    base = _base(values).encode(**encodings)
    published = base.transform_filter("!datum.suppressed").mark_bar(
        color=PALETTE, height={"band": 0.8}
    )
    if grouped:
        published = published.encode(
            x=x,
            color=alt.Color(
                "group:N",
                scale=alt.Scale(domain=groups),
                title=None,
                legend=alt.Legend(orient="bottom"),
            ),
        )
    else:
        published = published.encode(x=x)
    hidden = (
        base.transform_filter("datum.suppressed")
        .transform_calculate(start="0", end=str(domain_max))
        .mark_bar(color=GREY, opacity=0.5, stroke="#888", strokeDash=[4, 3], height={"band": 0.8})
        .encode(x=alt.X("start:Q", title=measure_title), x2="end:Q")
    )
    # with an offset channel a text mark sits at the top of its band: hang it from there
    labels = base.mark_text(
        align="left",
        baseline="top" if grouped else "middle",
        dx=4,
        dy=1 if grouped else 0,
        fontSize=11,
        color="#333",
    ).encode(x=alt.X("at:Q", title=measure_title), text="text:N")
    return alt.layer(published, hidden, labels)


def _count_rows(
    tables: Sequence[tuple[str, Mapping[str, Any]]], grouped: bool
) -> tuple[list[dict[str, Any]], float]:
    values = []
    top = 0.0
    for g, (group, table) in enumerate(tables):
        base_hidden = table.get("n") is None
        for i, row in enumerate(table.get("rows", ())):
            hidden = base_hidden or bool(row.get("suppressed")) or row.get("count") is None
            percent = None if hidden else float(row.get("percent") or 0.0)
            top = max(top, percent or 0.0)
            values.append(
                {
                    "category": str(row["label"]),
                    "order": i,
                    "group": group,
                    "group_order": g,
                    "percent": percent,
                    "suppressed": hidden,
                    "text": _hidden_text(group, grouped) if hidden else _percent_text(row),
                }
            )
    return values, top


def composition_spec(
    body: Mapping[str, Any], *, title: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    tables = _tables(body, lang)
    grouped = len(tables) > 1
    values, top = _count_rows(tables, grouped)
    domain = max(top * 1.25, 10.0)
    for value in values:
        value["at"] = 0 if value["suppressed"] else value["percent"]
    chart = _bars(
        values,
        measure="percent",
        measure_title=phrase("Percent of those who answered", lang),
        category_title="",
        grouped=grouped,
        domain_max=round(domain, 1),
    ).properties(width=WIDTH)
    subtitle = " · ".join(f"{g}: {_n_text(t.get('n'))}" for g, t in tables)
    return _config(chart, title or str(body.get("question", "")), subtitle)


def _likert_segments(
    tables: Sequence[tuple[str, Mapping[str, Any]]], lang: str | None
) -> tuple[list[dict[str, Any]], list[str]]:
    values: list[dict[str, Any]] = []
    scale: list[str] = []
    for g, (group, table) in enumerate(tables):
        rows = list(table.get("rows", ()))
        for row in rows:
            if str(row["label"]) not in scale:
                scale.append(str(row["label"]))
        axis = f"{group} ({_n_text(table.get('n'))}"
        if table.get("mean") is not None:
            axis += f", mean {table['mean']:g}"
        axis += ")"
        if table.get("n") is None:
            values.append(_segment(axis, g, SUPPRESSED, len(rows), 100.0, SUPPRESSED))
            continue
        if table.get("n") == 0:
            continue  # nobody answered: an empty bar, and the axis label says n=0
        published = [r for r in rows if not r.get("suppressed") and r.get("percent") is not None]
        for i, row in enumerate(rows):
            if row in published:
                percent = float(row["percent"])
                label = f"{percent:.1f}%" if percent >= 8 else ""
                values.append(_segment(axis, g, str(row["label"]), i, percent, label))
        if len(published) < len(rows):
            rest = max(0.0, round(100.0 - sum(float(r["percent"]) for r in published), 1))
            label = SUPPRESSED if rest >= 12 else ""
            values.append(_segment(axis, g, SUPPRESSED, len(rows), rest, label))
    return values, scale


def _segment(
    axis: str, group_order: int, point: str, order: int, percent: float, label: str
) -> dict[str, Any]:
    return {
        "group": axis,
        "group_order": group_order,
        "point": point,
        "order": order,
        "percent": percent,
        "text": label,
    }


def likert_spec(
    body: Mapping[str, Any],
    *,
    title: str | None = None,
    lang: str | None = None,
    tables: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    tables = tables if tables is not None else _tables(body, lang)
    values, scale = _likert_segments(tables, lang)
    hidden = [SUPPRESSED] if any(v["point"] == SUPPRESSED for v in values) else []
    colors = alt.Scale(
        domain=[*scale, *hidden], range=[*_diverging(len(scale)), GREY][: len(scale) + len(hidden)]
    )
    base = _base(values).encode(
        y=alt.Y(
            "group:N",
            sort=list(dict.fromkeys(v["group"] for v in values)),
            title=None,
            axis=alt.Axis(labelLimit=LABEL_LIMIT),
        ),
        x=alt.X(
            "percent:Q",
            stack="zero",
            title=phrase("Percent of those who answered", lang),
            scale=alt.Scale(domain=[0, 100]),
        ),
        order=alt.Order("order:Q"),
    )
    bars = base.mark_bar(height={"band": 0.7}, stroke="white", strokeWidth=0.5).encode(
        color=alt.Color(
            "point:N",
            scale=colors,
            sort=[*scale, *hidden],
            title=None,
            legend=alt.Legend(orient="bottom", columns=3, labelLimit=220),
        )
    )
    labels = base.mark_text(dx=-3, align="right", fontSize=10, color="#111").encode(
        x=alt.X("percent:Q", stack="zero", bandPosition=1), text="text:N"
    )
    chart = alt.layer(bars, labels).properties(width=WIDTH)
    figures = [
        f"{group}: top-2 {table['top2_percent']:.1f}%, bottom-2 {table['bottom2_percent']:.1f}%"
        for group, table in tables[:1]
        if table.get("top2_percent") is not None and table.get("bottom2_percent") is not None
    ]
    return _config(chart, title or str(body.get("question", "")), " · ".join(figures))


def _diverging(points: int) -> list[str]:
    """`points` colours from red (lowest) through pale yellow to blue (highest)."""
    anchors = [(215, 48, 39), (252, 141, 89), (254, 224, 144), (145, 191, 219), (69, 117, 180)]
    if points == 1:
        return ["#4575b4"]
    out = []
    for i in range(points):
        t = i / (points - 1) * (len(anchors) - 1)
        k = min(int(t), len(anchors) - 2)
        f = t - k
        rgb = [round(a + (b - a) * f) for a, b in zip(anchors[k], anchors[k + 1], strict=True)]
        out.append("#" + "".join(f"{c:02x}" for c in rgb))
    return out


def compare_spec(
    body: Mapping[str, Any], *, title: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    """The two waves as stacked bars side by side, with the difference and the test."""
    tables = [(str(w.get("wave")), w) for w in body.get("waves", ())]
    spec = likert_spec(body, title=title, lang=lang, tables=tables)
    parts = []
    if body.get("mean_difference") is not None:
        parts.append(f"mean difference {body['mean_difference']:+g}")
    if body.get("top2_difference") is not None:
        parts.append(f"top-2 difference {body['top2_difference']:+g} points")
    if body.get("p_value") is not None:
        parts.append(f"Mann-Whitney U {body['u']:g}, p = {body['p_value']:.3g}")
    if parts:
        spec["title"]["subtitle"] = " · ".join(parts)
    return spec


def _theme_heading(theme: Mapping[str, Any]) -> str:
    if theme.get("respondents") is None:
        return f"{theme['label']} (respondents suppressed)"
    mentions = "" if theme.get("mentions") is None else f", {theme['mentions']} mentions"
    return (
        f"{theme['label']} ({theme['respondents']} respondents,"
        f" {_pct(theme.get('percent_respondents'))}{mentions})"
    )


def themes_spec(
    body: Mapping[str, Any], *, title: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    tables = _tables(body, lang)
    grouped = len(tables) > 1
    values: list[dict[str, Any]] = []
    top = 0.0
    order = 0
    for g, (group, table) in enumerate(tables):
        order = 0
        for theme in table.get("themes", ()):
            for category in theme.get("categories", ()):
                # A count is drawn wherever it is published: in a release the base
                # (`n_coded`) may be suppressed beside published counts (§7.6), and where
                # a base is below K its counts are null already (§7.5).
                hidden = bool(category.get("suppressed")) or category.get("respondents") is None
                count = None if hidden else int(category["respondents"])
                top = max(top, float(count or 0))
                shown = f"{count} ({_pct(category.get('percent'))})" if count is not None else ""
                values.append(
                    {
                        "theme": _theme_heading(theme),
                        "category": str(category["label"]),
                        "order": order,
                        "group": group,
                        "group_order": g,
                        "respondents": count,
                        "suppressed": hidden,
                        "at": 0 if hidden else count,
                        "text": _hidden_text(group, grouped) if hidden else shown,
                    }
                )
                order += 1
    domain = max(top * 1.3, 5.0)
    layers = _bars(
        values,
        measure="respondents",
        measure_title=phrase("Respondents", lang),
        category_title="",
        grouped=grouped,
        domain_max=round(domain),
    )
    chart = (
        layers.properties(width=WIDTH)
        .facet(
            row=alt.Row(
                "theme:N",
                sort=list(dict.fromkeys(v["theme"] for v in values)),
                title=None,
                header=alt.Header(
                    labelAngle=0,
                    labelAlign="left",
                    labelAnchor="start",
                    labelOrient="top",
                    labelFontWeight="bold",
                    labelFontSize=12,
                ),
            ),
            spacing=6,
        )
        .resolve_scale(y="independent")
    )
    subtitle = " · ".join(f"{g}: coded {_n_text(t.get('n_coded'))}" for g, t in tables)
    return _config(chart, title or str(body.get("question", "")), subtitle)


BUILDERS = {
    "composition": composition_spec,
    "likert": likert_spec,
    "themes": themes_spec,
    "compare": compare_spec,
}


def chart_spec(
    kind: ChartKind, body: Mapping[str, Any], *, title: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    """The Vega-Lite v5 specification, data inline, of a §7 table body (as JSON)."""
    spec: dict[str, Any] = BUILDERS[kind](body, title=title, lang=lang)
    return spec


# What XML 1.0 cannot hold. Labels are user input, and vl-convert aborts the whole process
# (a Rust panic that cannot unwind) on a text it cannot put into its SVG, such as U+0004.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml_safe(value: Any) -> Any:
    """`value` with every string's characters that XML cannot hold replaced by U+FFFD."""
    if isinstance(value, str):
        return _NOT_XML.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {key: _xml_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_xml_safe(item) for item in value]
    return value


def render(spec: Mapping[str, Any], fmt: ImageFormat, *, scale: float = 2.0) -> bytes:
    """The chart as SVG (UTF-8) or PNG, drawn by vl-convert's embedded Vega."""
    spec = _xml_safe(spec)
    if fmt == "svg":
        svg: str = vl_convert.vegalite_to_svg(dict(spec), vl_version=VEGA_LITE)
        return svg.encode()
    png: bytes = vl_convert.vegalite_to_png(dict(spec), vl_version=VEGA_LITE, scale=scale)
    return png
