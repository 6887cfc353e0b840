"""Publishing, listing, reading and withdrawing releases (contract §7.6).

Publication computes every table exactly with the live statistics code
(`service/stats`), reads who stands where (`profiles`), has the audit decide which
cells to suppress against every earlier release of the survey (`audit`), and stores
the suppressed bodies (`bodies`): a release is served from what was stored, never
recomputed, so it never changes.

The model the audit works on is checked against the statistics code: each table's
counts, as the profiles give them, must equal the exact body's; a table where they
differ (which would be a bug) is withheld rather than trusted.

Publications of a survey are serialised (`_lock`), and read the counts, the profiles
and the earlier releases from one consistent state (`_snapshot`): on PostgreSQL a
snapshot that blocks no submission while the audit runs; SQLite's write transaction
already is one.
"""

import json
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from schemas.base import utcnow
from schemas.events import EventType
from schemas.releases import AuditSummary, Release, ReleaseIn, ReleaseTableIn
from schemas.surveys import Question
from service.coding.codebooks import codebook_of
from service.errors import Conflict, FieldProblem, Gone, Invalid, NotFound
from service.events import outbox
from service.keys import Principal
from service.pagination import decode_cursor, encode_cursor
from service.permissions import Action, require
from service.releases import audit, bodies, labels, profiles
from service.releases.profiles import Layout, Path, key_of
from service.stats import tables, themes
from service.stats.query import levels, resolve
from service.validation import CompiledSurvey

KINDS: dict[str, tuple[str, ...]] = {
    "composition": tables.COMPOSABLE,
    "likert": ("likert",),
    "themes": ("text",),
}


def _raw(value: Any) -> str:
    return key_of(value)


def _relocated(problem: Invalid, i: int) -> list[FieldProblem]:
    """A statistics query's problems, named at the table's place in the body."""
    found = []
    for p in problem.errors:
        name = str(p.loc[-1])
        loc: tuple[str | int, ...] = ("tables", i, name)
        if name.startswith("q."):
            loc = ("tables", i, "q", name.removeprefix("q."))
        found.append(FieldProblem(loc, p.msg, p.type))
    return found


def _check_question(
    session: Session, compiled: CompiledSurvey, spec: ReleaseTableIn, i: int
) -> tuple[Question | None, list[FieldProblem]]:
    question = compiled.questions.get(spec.question)
    if question is None:
        return None, [FieldProblem(("tables", i, "question"), "the survey has no such question")]
    if question.type not in KINDS[spec.kind]:
        msg = f"a {spec.kind} table does not apply to a {question.type} question"
        return None, [FieldProblem(("tables", i, "kind"), msg)]
    if spec.kind == "themes":
        try:
            codebook_of(session, survey_id=compiled.definition.id, question_id=question.id)
        except NotFound:
            msg = "a themes table needs the question's codebook"
            return None, [FieldProblem(("tables", i, "question"), msg)]
    return question, []


def _exact_table(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    spec: ReleaseTableIn,
    i: int,
) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
    """The table's request as stored and its exact body, or the problems found."""
    question, found = _check_question(session, compiled, spec, i)
    if question is None:
        return None, found
    filters = [(q, _raw(v)) for q, values in (spec.q or {}).items() for v in values]
    try:
        query = resolve(
            compiled,
            principal=principal,
            sites=list(spec.site or []),
            waves=list(spec.wave or []),
            filters=filters,
            by=spec.by,
            min_cell=None,
        )
    except Invalid as exc:
        return None, _relocated(exc, i)
    if spec.kind == "composition":
        body: Any = tables.composition(session, compiled, question_id=question.id, query=query)
    elif spec.kind == "likert":
        body = tables.likert(session, compiled, question_id=question.id, query=query)
    else:
        body = themes.themes(
            session, compiled, question_id=question.id, query=query, codebook_of=codebook_of
        )
    chosen = {}
    for q, keys in query.scope.filters:
        spelt = {level.key: level.value for level in levels(compiled.questions[q])}
        chosen[q] = [spelt[k] for k in keys]
    table: dict[str, Any] = {
        "id": spec.id,
        "kind": spec.kind,
        "question": question.id,
        "by": spec.by,
        "site": list(query.scope.sites) if query.scope.sites is not None else None,
        "wave": list(query.scope.waves) if query.scope.waves is not None else None,
        "q": chosen or None,
        **body.model_dump(mode="json", exclude={"question", "by", "min_cell"}),
    }
    return table, []


def _lock(session: Session) -> None:
    """Publications (and withdrawals) wait for one another: each audits against every
    release committed before it. On PostgreSQL a lock on the release table alone, held
    by the publishing transaction until it commits (submissions never take it); on
    SQLite the write transaction already is one."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE release IN SHARE ROW EXCLUSIVE MODE"))


@contextmanager
def _snapshot(session: Session) -> Iterator[Session]:
    """Where publication reads the data: one consistent state, so that the exact
    tables, the profiles and the earlier releases agree.

    On PostgreSQL, a read-only REPEATABLE READ transaction on a connection of its own,
    begun after `_lock` was granted (so it sees every earlier release): a snapshot,
    which takes no lock that a submission waits for, so submissions go on while the
    audit solves its programs; what they add counts in later releases. On SQLite the
    publishing write transaction itself (one writer at a time)."""
    bind = session.get_bind()
    if bind.dialect.name != "postgresql":
        yield session
        return
    connection = bind.engine.connect().execution_options(isolation_level="REPEATABLE READ")
    with connection, connection.begin():
        connection.execute(text("SET TRANSACTION READ ONLY"))
        with Session(bind=connection) as snapshot:
            yield snapshot


def _earlier(session: Session, survey_id: str) -> list[Release]:
    return list(
        session.exec(
            select(Release)
            .where(col(Release.survey_id) == survey_id)
            .order_by(col(Release.published_at), col(Release.pk))
        )
    )


def _moment_of(release: Release) -> audit.Moment:
    population = profiles.decode_state(release.audit_state)
    layouts = [Layout.of(t, population.dims) for t in release.tables]
    paths = [profiles.count_paths(t) for t in release.tables]
    shown = [
        {p: profiles.read(t, p) for p in ps} for t, ps in zip(release.tables, paths, strict=True)
    ]
    return audit.Moment(
        population=population,
        layouts=layouts,
        tables=paths,
        shown=shown,
        identities=[_identity(t) for t in release.tables],
    )


def _identity(table: dict[str, Any]) -> str:
    """What makes two tables the same table: their request, whatever their ids."""
    fields = ("kind", "question", "by", "site", "wave", "q")
    return json.dumps([table.get(f) for f in fields], sort_keys=True)


def _model_counts(population: profiles.Population, layouts: list[Layout]) -> list[Counter[Path]]:
    sizes = Counter(population.members.values())
    counts: list[Counter[Path]] = [Counter() for _ in layouts]
    for t, layout in enumerate(layouts):
        by_place: Counter[Any] = Counter()  # profiles alike where the table looks
        example: dict[Any, profiles.Profile] = {}
        seen = layout.seen()
        for p, profile in enumerate(population.profiles):
            n = sizes.get(p, 0)
            if n:
                place = tuple(profile[i] for i in seen)
                by_place[place] += n
                example.setdefault(place, profile)
        for place, n in by_place.items():
            for path in layout.cells(example[place]):
                counts[t][path] += n
    return counts


def publish(
    session: Session,
    compiled: CompiledSurvey,
    *,
    principal: Principal,
    data: ReleaseIn,
    default_min_cell: int,
    audit_seconds: float,
) -> tuple[Release, AuditSummary]:
    require(principal, Action.publish_releases)
    survey_id = compiled.definition.id
    k = data.min_cell if data.min_cell is not None else default_min_cell
    problems: list[FieldProblem] = []
    if k < default_min_cell:
        msg = f"min_cell must be at least HEARME_MIN_CELL ({default_min_cell})"
        problems.append(FieldProblem(("min_cell",), msg))
    seen: set[str] = set()
    for i, spec in enumerate(data.tables):
        if spec.id in seen:
            problems.append(FieldProblem(("tables", i, "id"), "a table id appears twice"))
        seen.add(spec.id)
    _lock(session)
    with _snapshot(session) as snapshot:
        found: list[dict[str, Any]] = []
        for i, spec in enumerate(data.tables):
            table, mine = _exact_table(snapshot, compiled, principal=principal, spec=spec, i=i)
            problems += mine
            if table is not None:
                found.append(table)
        if problems:
            raise Invalid("the release is not valid", problems)
        population = profiles.load(snapshot, survey_id, profiles.dims_of(compiled, found))
        moments = [_moment_of(r) for r in _earlier(snapshot, survey_id)]
    if _find(session, survey_id, data.id) is not None:
        raise Conflict(f"survey {survey_id!r} already has a release {data.id!r}")
    layouts = [Layout.of(t, population.dims) for t in found]
    paths = [profiles.count_paths(t) for t in found]
    exact = [{p: int(profiles.read(t, p)) for p in ps} for t, ps in zip(found, paths, strict=True)]
    modelled = _model_counts(population, layouts)
    hidden = audit.primary(paths, exact, [t["kind"] for t in found], k)
    new = audit.Moment(
        population=population,
        layouts=layouts,
        tables=paths,
        hidden=hidden,
        identities=[_identity(t) for t in found],
    )
    verdict = audit.protect([*moments, new], k=k, budget=audit_seconds)
    for t, (truth, counts) in enumerate(zip(exact, modelled, strict=True)):
        if any(counts.get(p, 0) != n for p, n in truth.items()):
            verdict.withheld.add(t)  # the model is not the statistics: trust neither
            verdict.hidden[t] = set(paths[t])
    frozen = [
        bodies.freeze(table, verdict.hidden[t], withheld=t in verdict.withheld)
        for t, table in enumerate(found)
    ]
    for table in frozen:
        table["min_cell"] = k
    scopes = [t["site"] for t in frozen]
    release = Release(
        survey_id=survey_id,
        id=data.id,
        title=data.title,
        published_by=principal.name,
        min_cell=k,
        n_responses=len(population.members),
        tables=frozen,
        labels=labels.labels_at_publication(session, compiled, frozen),
        scope_sites=None if None in scopes else sorted({s for sc in scopes for s in sc or ()}),
        audit_state=profiles.encode_state(population),
    )
    session.add(release)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(f"survey {survey_id!r} already has a release {data.id!r}") from exc
    outbox.emit(
        session,
        type=EventType.release_published,
        survey=survey_id,
        data={"id": release.id, "title": release.title},
    )
    summary = AuditSummary(
        variables=verdict.variables,
        constraints=verdict.constraints,
        targets=verdict.targets,
        secondary=verdict.secondary,
        solves=verdict.solves,
        withheld_tables=[found[t]["id"] for t in sorted(verdict.withheld)],
        seconds=verdict.seconds,
    )
    return release, summary


def _find(session: Session, survey_id: str, release_id: str) -> Release | None:
    return session.exec(
        select(Release).where(col(Release.survey_id) == survey_id, col(Release.id) == release_id)
    ).first()


def visible_to(principal: Principal, release: Release) -> bool:
    """A key bound to sites sees the releases whose every table is limited to them."""
    return release.visible_to_sites(principal.sites)


def get_release(
    session: Session, *, principal: Principal, survey_id: str, release_id: str
) -> Release:
    require(principal, Action.read_releases)
    release = _find(session, survey_id, release_id)
    if release is None or not visible_to(principal, release):
        raise NotFound(f"survey {survey_id!r} has no release {release_id!r}")
    if release.withdrawn_at is not None:
        raise Gone(f"release {release_id!r} was withdrawn")
    return release


def list_releases(
    session: Session,
    *,
    principal: Principal,
    survey_id: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[Release], str | None]:
    """Published, not withdrawn, visible to the key; oldest first."""
    require(principal, Action.read_releases)
    after = decode_cursor(cursor)
    if after is not None and not isinstance(after, int):
        raise Invalid("malformed cursor", [FieldProblem(("query", "cursor"), "malformed cursor")])
    query = (
        select(Release)
        .where(col(Release.survey_id) == survey_id, col(Release.withdrawn_at).is_(None))
        .order_by(col(Release.pk))
    )
    if after is not None:
        query = query.where(col(Release.pk) > after)
    page: list[Release] = []
    for release in session.exec(query):
        if not visible_to(principal, release):
            continue
        if len(page) == limit:
            return page, encode_cursor(page[-1].pk)
        page.append(release)
    return page, None


def withdraw(session: Session, *, principal: Principal, survey_id: str, release_id: str) -> None:
    """Withdrawn, a release is no longer served (410), but it still binds every later
    audit: what was seen cannot be unseen."""
    require(principal, Action.withdraw_releases)
    release = get_release(session, principal=principal, survey_id=survey_id, release_id=release_id)
    release.withdrawn_at = utcnow()
    session.add(release)
    session.flush()
    outbox.emit(
        session,
        type=EventType.release_withdrawn,
        survey=survey_id,
        data={"id": release.id, "title": release.title},
    )
