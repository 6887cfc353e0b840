"""Charts of statistics tables (contract §10): `?format=svg|png|vega` of every table.

`chart_spec(kind, body)` is a pure function of a §7 table body as JSON (a live table or a
release's table, which have the same shape), so whatever serves a table can chart it; the
specifications themselves are built in `vega` (Altair, vl-convert), imported on the first
chart only so that those libraries do not slow every process's start.
"""

import json
from collections.abc import Mapping
from typing import Any

from service.exports.kinds import ChartKind, ImageFormat

__all__ = ["CHART_CONTENT", "CHART_FORMATS", "ChartKind", "ImageFormat", "chart", "chart_spec"]


CHART_FORMATS = ("svg", "png", "vega")
MEDIA_TYPES = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "vega": "application/vnd.vegalite.v5+json",
}
CHART_CONTENT: dict[str, Any] = {
    "text/csv": {"schema": {"type": "string"}},
    "image/svg+xml": {"schema": {"type": "string"}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    MEDIA_TYPES["vega"]: {"schema": {"type": "object"}},
}


def chart_spec(
    kind: ChartKind, body: Mapping[str, Any], *, title: str | None = None, lang: str | None = None
) -> dict[str, Any]:
    """The Vega-Lite v5 specification, data inline, of a §7 table body (as JSON)."""
    from service.exports import vega

    return vega.chart_spec(kind, body, title=title, lang=lang)


def render(spec: Mapping[str, Any], fmt: ImageFormat, *, scale: float = 2.0) -> bytes:
    """The chart as SVG (UTF-8) or PNG, drawn by vl-convert's embedded Vega."""
    from service.exports import vega

    return vega.render(spec, fmt, scale=scale)


def chart(
    kind: ChartKind,
    body: Mapping[str, Any],
    fmt: str,
    *,
    title: str | None = None,
    lang: str | None = None,
) -> tuple[bytes, str]:
    """A table's chart in `fmt` (svg, png or vega), with its media type."""
    spec = chart_spec(kind, body, title=title, lang=lang)
    if fmt == "vega":
        return json.dumps(spec, ensure_ascii=False).encode(), MEDIA_TYPES["vega"]
    if fmt == "svg":
        return render(spec, "svg"), MEDIA_TYPES["svg"]
    if fmt == "png":
        return render(spec, "png"), MEDIA_TYPES["png"]
    raise ValueError(f"not a chart format: {fmt!r}")
