"""Who stands where: each response's cross-classification over what a release's tables
distinguish, and which cells of a table it counts in.

A *profile* is a response seen through the dimensions (`Dim`s) that a release's tables
use: its site, its wave, and its answer to each question a table counts, groups by or
filters on (a value, a set of options, or a coded text answer's status and effective
categories). Responses with the same profile are indistinguishable to every table of
the release, so the disclosure audit works on profiles and counts of responses, never
on answers.

`Layout.cells` says which cells of a published table (paths into its §7 body) a profile
counts in. It is computed from the table's request and its stored body (row values,
group values, themes and categories, in the body's order), so the tables of a release
published long ago are read exactly as they were published, whatever the survey or its
codebook became since.

At publication a release keeps its profiles and which response had which
(`encode_state`): the audit of every later release needs them to write this release's
tables as sums over the same respondents. The state holds response ids and categorical
codes only (never text) and is never served.
"""

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import String, bindparam, text
from sqlmodel import Session

from service.stats import cells
from service.validation import CompiledSurvey

CODED = frozenset({"single", "agreed", "resolved"})

# A profile: (site, wave, one value per dimension), hashable. A value is None (no
# answer), a str (single-valued answer, spelt as the summary cells spell it), a tuple of
# str (a multi-choice answer's options), or (status, categories) for a text answer.
Value = Any
Profile = tuple[Value, ...]
Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Dim:
    question: str
    kind: str  # "single", "multi" or "text"


def dim_kind(question_type: str) -> str:
    if question_type in cells.SINGLE:
        return "single"
    return "multi" if question_type in cells.MULTI else "text"


def key_of(value: Any) -> str:
    """A JSON value of a row, group or filter, spelt as the cells spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dims_of(compiled: CompiledSurvey, tables: Sequence[dict[str, Any]]) -> list[Dim]:
    """Every question the tables count, group by or filter on, in definition order."""
    used: set[str] = set()
    for table in tables:
        used.add(table["question"])
        if table.get("by") not in (None, "site", "wave"):
            used.add(table["by"])
        used.update((table.get("q") or {}).keys())
    return [Dim(q.id, dim_kind(q.type)) for q in compiled.definition.questions if q.id in used]


_RESPONSES = text("SELECT pk, id, site, wave FROM response WHERE survey_id = :survey")
_ANSWERS = text(
    f"SELECT a.response_pk, a.question_id, {cells.VALUE} FROM answer a"  # noqa: S608
    " WHERE a.survey_id = :survey AND a.question_id IN :questions"
).bindparams(bindparam("questions", expanding=True, type_=String()))
_OUTCOMES = text(
    "SELECT response_pk, question_id, status FROM coding_outcome"
    " WHERE survey_id = :survey AND question_id IN :questions"
).bindparams(bindparam("questions", expanding=True, type_=String()))
_CATEGORIES = text(
    "SELECT response_pk, question_id, category_id FROM effective_category"
    " WHERE survey_id = :survey AND question_id IN :questions"
).bindparams(bindparam("questions", expanding=True, type_=String()))


@dataclass
class Population:
    """The responses at one moment: their ids, and the profile each has."""

    dims: list[Dim]
    profiles: list[Profile]
    members: dict[str, int]  # response id -> index into profiles


def load(session: Session, survey_id: str, dims: list[Dim]) -> Population:
    """Every stored response of the survey (erased ones are gone) with its profile."""
    position = {d.question: i for i, d in enumerate(dims)}
    ids: dict[int, str] = {}
    rows: dict[int, list[Any]] = {}
    for pk, rid, site, wave in session.execute(_RESPONSES, {"survey": survey_id}).all():
        ids[pk] = rid
        rows[pk] = [site, wave] + [None] * len(dims)
    params = {"survey": survey_id}
    valued = [d.question for d in dims]
    if valued:
        for pk, qid, value in session.execute(_ANSWERS, {**params, "questions": valued}).all():
            row = rows.get(pk)
            if row is None:
                continue
            i = position[qid]
            kind = dims[i].kind
            if kind == "single":
                row[2 + i] = value
            elif kind == "multi":
                row[2 + i] = (*(row[2 + i] or ()), value)
            else:
                row[2 + i] = ["", []]
    texts = [d.question for d in dims if d.kind == "text"]
    if texts:
        for pk, qid, status in session.execute(_OUTCOMES, {**params, "questions": texts}).all():
            row = rows.get(pk)
            if row is not None and row[2 + position[qid]] is not None:
                row[2 + position[qid]][0] = status
        for pk, qid, category in session.execute(_CATEGORIES, {**params, "questions": texts}).all():
            row = rows.get(pk)
            if row is not None and row[2 + position[qid]] is not None:
                row[2 + position[qid]][1].append(category)
    index: dict[Profile, int] = {}
    members: dict[str, int] = {}
    for pk, row in rows.items():
        profile = tuple(_frozen(v) for v in row)
        members[ids[pk]] = index.setdefault(profile, len(index))
    return Population(dims=dims, profiles=list(index), members=members)


def _frozen(value: Any) -> Any:
    """A profile value in its hashable, canonical form."""
    if isinstance(value, list):  # a text answer: [status, categories]
        return (value[0], tuple(sorted(value[1])))
    if isinstance(value, tuple):
        return tuple(sorted(value))
    return value


def encode_state(population: Population) -> bytes:
    data = {
        "dims": [[d.question, d.kind] for d in population.dims],
        "profiles": population.profiles,
        "ids": list(population.members),
        "profile_of": list(population.members.values()),
    }
    return zlib.compress(orjson.dumps(data), 6)


def _thaw(value: Any) -> Any:
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[1], list):
            return (value[0], tuple(value[1]))
        return tuple(value)
    return value


def decode_state(blob: bytes) -> Population:
    data = orjson.loads(zlib.decompress(blob))
    dims = [Dim(q, kind) for q, kind in data["dims"]]
    profiles = [tuple(_thaw(v) for v in p) for p in data["profiles"]]
    return Population(
        dims=dims,
        profiles=profiles,
        members=dict(zip(data["ids"], data["profile_of"], strict=True)),
    )


@dataclass
class Layout:
    """Where a profile counts in one table: read from the table's request and body."""

    kind: str
    dim: int  # index of the table's question among the dims
    sites: frozenset[str] | None
    waves: frozenset[str] | None
    filters: list[tuple[int, frozenset[str]]]
    by: str | None
    by_dim: int | None
    groups: dict[str, int]
    rows: dict[str, int]
    categories: dict[str, tuple[int, int]]  # category -> (theme index, category index)
    n_groups: int

    @classmethod
    def of(cls, table: dict[str, Any], dims: Sequence[Dim]) -> "Layout":
        position = {d.question: i for i, d in enumerate(dims)}
        by = table.get("by")
        by_dim = position[by] if by not in (None, "site", "wave") else None
        groups = {key_of(g["value"]): i for i, g in enumerate(table.get("groups") or ())}
        rows = {key_of(r["value"]): i for i, r in enumerate(table.get("rows") or ())}
        categories = {
            c["id"]: (ti, ci)
            for ti, theme in enumerate(table.get("themes") or ())
            for ci, c in enumerate(theme["categories"])
        }
        sites, waves = table.get("site"), table.get("wave")
        return cls(
            kind=table["kind"],
            dim=position[table["question"]],
            sites=frozenset(sites) if sites is not None else None,
            waves=frozenset(waves) if waves is not None else None,
            filters=[
                (position[q], frozenset(key_of(v) for v in values))
                for q, values in (table.get("q") or {}).items()
            ],
            by=by,
            by_dim=by_dim,
            groups=groups,
            rows=rows,
            categories=categories,
            n_groups=len(groups),
        )

    def seen(self) -> tuple[int, ...]:
        """The places of a profile this table looks at (site, wave, its filters, its
        `by` question and its own): profiles alike there count in the same cells."""
        places = [0, 1, 2 + self.dim, *(2 + d for d, _ in self.filters)]
        if self.by_dim is not None:
            places.append(2 + self.by_dim)
        return tuple(sorted(set(places)))

    def cells(self, profile: Profile) -> list[Path]:
        """The cells of this table (paths into its body) that a profile counts in."""
        site, wave = profile[0], profile[1]
        if self.sites is not None and site not in self.sites:
            return []
        if self.waves is not None and wave not in self.waves:
            return []
        for dim, keys in self.filters:
            if profile[2 + dim] not in keys:
                return []
        bodies: list[Path] = [()]
        if self.by is not None:
            group_key = {"site": site, "wave": wave}.get(self.by)
            if self.by_dim is not None:
                group_key = profile[2 + self.by_dim]
            group = self.groups.get(group_key) if isinstance(group_key, str) else None
            if group is not None:
                bodies.append(("groups", group))
        value = profile[2 + self.dim]
        own = self._themes(value) if self.kind == "themes" else self._rows(value)
        return [(*body, *path) for body in bodies for path in own]

    def _rows(self, value: Value) -> list[Path]:
        if value is None:
            return [("missing",)]
        chosen = value if isinstance(value, tuple) else (value,)
        found: list[Path] = [("n",)]
        for key in chosen:
            row = self.rows.get(key)
            if row is not None:
                found.append(("rows", row, "count"))
        return found

    def _themes(self, value: Value) -> list[Path]:
        if value is None:
            return [("n_responses",), ("n_blank",)]
        status, categories = value
        found: list[Path] = [("n_responses",), ("n_answered",)]
        if status in CODED:
            found.append(("n_coded",))
        elif status == "disputed":
            found.append(("n_disputed",))
        else:
            found.append(("n_uncoded",))
        themes: set[int] = set()
        for category in categories:
            place = self.categories.get(category)
            if place is not None:
                found.append(("themes", place[0], "categories", place[1], "respondents"))
                themes.add(place[0])
        found += [("themes", t, "respondents") for t in sorted(themes)]
        return found


def count_paths(table: dict[str, Any]) -> list[Path]:
    """Every count cell of a table body (whole scope first, then each group)."""
    bodies: list[tuple[Path, dict[str, Any]]] = [((), table)]
    bodies += [(("groups", i), g) for i, g in enumerate(table.get("groups") or ())]
    paths: list[Path] = []
    for prefix, body in bodies:
        if table["kind"] == "themes":
            paths += [
                (*prefix, f)
                for f in (
                    "n_responses",
                    "n_answered",
                    "n_blank",
                    "n_coded",
                    "n_disputed",
                    "n_uncoded",
                )
            ]
            for ti, theme in enumerate(body["themes"]):
                paths.append((*prefix, "themes", ti, "respondents"))
                paths += [
                    (*prefix, "themes", ti, "categories", ci, "respondents")
                    for ci in range(len(theme["categories"]))
                ]
        else:
            paths += [(*prefix, "n"), (*prefix, "missing")]
            paths += [(*prefix, "rows", i, "count") for i in range(len(body["rows"]))]
    return paths


def base_path(kind: str, path: Path) -> Path:
    """The base of the body a cell belongs to (`n`, or `n_coded` for themes)."""
    prefix = path[:2] if path[:1] == ("groups",) else ()
    return (*prefix, "n_coded" if kind == "themes" else "n")


def read(body: dict[str, Any], path: Path) -> Any:
    node: Any = body
    for step in path:
        node = node[step]
    return node


def write(body: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = body
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
