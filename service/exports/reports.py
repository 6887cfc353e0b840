"""Reports (contract §10): one self-contained HTML page of statistics tables, each with its
chart (inline SVG), its scope (sites, waves, n) and the time it was computed.

`render_report()` is a pure function of the tables' bodies, so a release can be rendered
by the same code as live statistics (`report_tables()` computes the live ones). The page
loads nothing from elsewhere: styles are inline, charts are inline SVG, and there is no
script. Jinja2 autoescapes everything a person typed (labels, titles); the SVG comes from
vl-convert, which writes text as escaped XML, and its element ids are made unique per
chart so that several charts can share one page.
"""

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from sqlmodel import Session

from schemas.texts import phrase, resolve
from service.coding.codebooks import codebook_of
from service.errors import FieldProblem, Invalid
from service.exports import charts
from service.exports.rows import survey_codebooks
from service.keys import Principal
from service.permissions import Action, require
from service.stats import tables, themes
from service.stats.query import StatsQuery
from service.validation import CompiledSurvey

KIND_OF_TYPE = {
    "choice": "composition",
    "multi_choice": "composition",
    "boolean": "composition",
    "likert": "likert",
}

_environment = Environment(
    loader=PackageLoader("service.exports", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class ReportScope:
    """What a page covers, in words: the sites, waves and filters of its tables."""

    sites: Sequence[str]
    waves: Sequence[str]
    filters: Sequence[str] = ()
    by: str | None = None
    min_cell: int | None = None


@dataclass(frozen=True)
class ReportTable:
    kind: charts.ChartKind
    question: str
    title: str
    body: Mapping[str, Any]
    computed_at: datetime
    scope: ReportScope


def _unique_ids(svg: str, prefix: str) -> str:
    """Prefix every id of one chart's SVG, and the references to them."""
    ids = set(re.findall(r'\bid="([^"]+)"', svg))
    if not ids:
        return svg
    pattern = re.compile(
        r'(\bid="|url\(#|href="#)('
        + "|".join(re.escape(i) for i in sorted(ids, key=len)[::-1])
        + r')(?=[")])'
    )
    return pattern.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", svg)


def _svg(table: ReportTable, index: int, lang: str | None) -> Markup:
    spec = charts.chart_spec(table.kind, table.body, title=table.title, lang=lang)
    svg = charts.render(spec, "svg").decode()
    svg = re.sub(r"^<\?xml[^>]*>\s*", "", svg)
    # The table below each chart holds its figures: screen readers read that, not the marks.
    svg = svg.replace("<svg ", '<svg aria-hidden="true" ', 1)
    return Markup(_unique_ids(svg, f"t{index}-"))  # noqa: S704  (vl-convert's escaped XML)


def _cell(count: Any, suppressed: Any) -> str:
    return "suppressed" if suppressed or count is None else str(count)


def _percent(value: Any) -> str:
    return "" if value is None else f"{value:.1f}"


def _groups(body: Mapping[str, Any], lang: str | None) -> list[tuple[str, Mapping[str, Any]]]:
    if "waves" in body:
        return [(str(w.get("wave")), w) for w in body["waves"]]
    found: list[tuple[str, Mapping[str, Any]]] = [(phrase("All responses", lang), body)]
    found += [(str(g["label"]), g) for g in body.get("groups") or ()]
    return found


def _lines(table: ReportTable, lang: str | None) -> tuple[list[str], list[list[str]]]:
    """The table as a header and lines of text, suppressed cells so marked."""
    if table.kind == "themes":
        header = ["Group", "Theme", "Category", "Respondents", "% of coded"]
        lines = []
        for group, part in _groups(table.body, lang):
            for theme in part.get("themes", ()):
                lines.append(
                    [
                        group,
                        str(theme["label"]),
                        f"(any; {_cell(theme.get('mentions'), False)} mentions)",
                        _cell(theme.get("respondents"), theme.get("suppressed")),
                        _percent(theme.get("percent_respondents")),
                    ]
                )
                for category in theme.get("categories", ()):
                    lines.append(
                        [
                            group,
                            str(theme["label"]),
                            str(category["label"]),
                            _cell(category.get("respondents"), category.get("suppressed")),
                            _percent(category.get("percent")),
                        ]
                    )
        return header, lines
    header = ["Group", "Value", "Count", "%"]
    lines = []
    for group, part in _groups(table.body, lang):
        for row in part.get("rows", ()):
            lines.append(
                [
                    group,
                    str(row["label"]),
                    _cell(row.get("count"), row.get("suppressed")),
                    _percent(row.get("percent")),
                ]
            )
    return header, lines


def _n(table: ReportTable) -> str:
    body = table.body
    if table.kind == "themes":
        coded, answered = _cell(body.get("n_coded"), False), _cell(body.get("n_answered"), False)
        return f"{coded} coded of {answered} answers"
    if table.kind == "compare":
        return ", ".join(f"{w.get('wave')}: {_cell(w.get('n'), False)}" for w in body["waves"])
    return f"{_cell(body.get('n'), False)} answered, {_cell(body.get('missing'), False)} missing"


def _figures(table: ReportTable) -> list[str]:
    body = table.body
    out = []
    if table.kind == "likert" and body.get("mean") is not None:
        out.append(
            f"mean {body['mean']}, median {body['median']},"
            f" top-2 {_percent(body['top2_percent'])}%,"
            f" bottom-2 {_percent(body['bottom2_percent'])}%"
        )
    if table.kind == "compare" and body.get("mean_difference") is not None:
        out.append(
            f"mean difference {body['mean_difference']:+}, top-2 difference"
            f" {body['top2_difference']:+} points,"
            f" Mann-Whitney U {body['u']}, p = {body['p_value']:.3g}"
        )
    return out


def table_text(table: ReportTable, lang: str | None = None) -> dict[str, Any]:
    """One table as text for a page of its own (the workbench's dashboard): its header and
    lines (suppressed cells so marked), its n and its derived figures, as the report has
    them."""
    header, lines = _lines(table, lang)
    if len(_groups(table.body, lang)) == 1:  # one group: its column says nothing
        header, lines = header[1:], [line[1:] for line in lines]
    return {
        "table": table,
        "header": header,
        "lines": lines,
        "n": _n(table),
        "figures": _figures(table),
    }


def render_report(
    *,
    title: str,
    subtitle: str,
    tables_: Sequence[ReportTable],
    generated_at: datetime,
    lang: str | None = None,
) -> str:
    """The page: a pure function of its tables, for live statistics and releases alike."""
    sections = []
    for index, table in enumerate(tables_):
        sections.append(
            {
                **table_text(table, lang),
                "anchor": f"{index + 1}-{table.question}",
                "chart": _svg(table, index, lang),
                "computed_at": _when(table.computed_at),
            }
        )
    return _environment.get_template("report.html.j2").render(
        title=title,
        subtitle=subtitle,
        sections=sections,
        generated_at=_when(generated_at),
    )


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- live statistics -----------------------------------------------------------------------


def reportable(session: Session, compiled: CompiledSurvey) -> list[str]:
    """The questions that have a table: closed ones, and text questions with a codebook."""
    coded = survey_codebooks(session, compiled)
    return [q.id for q in compiled.definition.questions if q.type in KIND_OF_TYPE or q.id in coded]


def _scope_of(
    compiled: CompiledSurvey,
    *,
    sites: Collection[str] | None,
    waves: Collection[str] | None,
    filters: Iterable[tuple[str, Sequence[str]]],
    by: str | None,
    min_cell: int | None,
    lang: str | None,
) -> ReportScope:
    """The scope in words: the names of the sites and waves (None: all of them) and the
    filters."""
    definition = compiled.definition
    return ReportScope(
        sites=[resolve(s.name, lang) for s in definition.sites if sites is None or s.id in sites],
        waves=[resolve(w.name, lang) for w in definition.waves if waves is None or w.id in waves],
        filters=[f"{qid} = {' or '.join(values)}" for qid, values in filters],
        by=by,
        min_cell=min_cell,
    )


def _scope(compiled: CompiledSurvey, query: StatsQuery) -> ReportScope:
    return _scope_of(
        compiled,
        sites=query.scope.sites,
        waves=query.scope.waves,
        filters=query.scope.filters,
        by=query.by,
        min_cell=query.min_cell,
        lang=query.lang,
    )


def report_tables(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    query: StatsQuery,
    questions: Sequence[str] = (),
) -> list[ReportTable]:
    """The live tables of the chosen questions (default: every question with a table),
    labelled in the query's language."""
    require(principal, Action.read_statistics)
    available = reportable(session, compiled)
    chosen = list(dict.fromkeys(questions)) or available
    problems = [
        FieldProblem(
            ("query", "question"), f"{qid!r} is not a question of this survey with a table"
        )
        for qid in chosen
        if qid not in available
    ]
    if problems:
        raise Invalid("the report request is not valid", problems)
    scope = _scope(compiled, query)
    found = []
    for qid in chosen:
        question = compiled.questions[qid]
        kind: charts.ChartKind
        if question.type == "text":
            kind = "themes"
            body: Any = themes.themes(
                session, compiled, question_id=qid, query=query, codebook_of=codebook_of
            )
        elif question.type == "likert":
            kind = "likert"
            body = tables.likert(session, compiled, question_id=qid, query=query)
        else:
            kind = "composition"
            body = tables.composition(session, compiled, question_id=qid, query=query)
        found.append(
            ReportTable(
                kind=kind,
                question=qid,
                title=resolve(question.text, query.lang),
                body=body.model_dump(mode="json"),
                computed_at=datetime.now(UTC),
                scope=scope,
            )
        )
    return found


# --- releases ------------------------------------------------------------------------------


def _release_scope(
    compiled: CompiledSurvey, table: Mapping[str, Any], min_cell: int, lang: str | None
) -> ReportScope:
    return _scope_of(
        compiled,
        sites=table.get("site") or None,  # a release table without sites counts them all
        waves=table.get("wave") or None,
        filters=(table.get("q") or {}).items(),
        by=table.get("by"),
        min_cell=min_cell,
        lang=lang,
    )


def release_tables(
    compiled: CompiledSurvey,
    *,
    tables_: Sequence[Mapping[str, Any]],
    published_at: datetime,
    min_cell: int,
    lang: str | None = None,
    titles: Mapping[str, str | None] | None = None,
) -> list[ReportTable]:
    """A release's stored tables as report tables: the figures as published, never live
    ones; each computed at the release's publication."""
    found = []
    for table in tables_:
        question = compiled.questions.get(table["question"])
        title = (titles or {}).get(table["id"])
        if title is None:
            title = resolve(question.text, lang) if question is not None else table["question"]
        found.append(
            ReportTable(
                kind=table["kind"],
                question=table["question"],
                title=title,
                body=table,
                computed_at=published_at,
                scope=_release_scope(compiled, table, min_cell, lang),
            )
        )
    return found
