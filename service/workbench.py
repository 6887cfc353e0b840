"""What the browser workbench (/app) shows beside the API's own answers: how far a coder
has got, who has coded a question, responses by site and wave, and which surveys have
releases a reader may open. Each is checked against the permissions table like any
other read."""

import threading
import time
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from schemas.codings import Coding
from schemas.releases import Release
from schemas.responses import Answer, Response
from schemas.surveys import Survey
from service.coding.codebooks import codebook_row
from service.keys import Principal
from service.permissions import Action, require
from service.releases.publication import visible_to


class _Totals:
    """How many answers a queue holds, per survey, question and sites, for TOTAL_SECONDS:
    counting 100,000 answers on every save-and-next would cost more than the rest of it,
    and a total a few seconds old (new submissions) misleads nobody. `done` is exact."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[object, ...], tuple[float, int]] = {}

    def get(self, key: tuple[object, ...]) -> int | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > TOTAL_SECONDS:
            return None
        return entry[1]

    def put(self, key: tuple[object, ...], total: int) -> int:
        with self._lock:
            if len(self._entries) > 1000:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), total)
        return total


TOTAL_SECONDS = 10.0
_totals = _Totals()


@dataclass(frozen=True)
class Progress:
    done: int  # answers the caller has coded
    total: int  # non-blank answers within the caller's sites


def progress(
    session: Session, *, principal: Principal, survey_id: str, question_id: str
) -> Progress:
    """How many of the question's answers the caller has coded, of how many."""
    require(principal, Action.code)
    codebook_row(session, survey_id=survey_id, question_id=question_id)
    answers = select(func.count()).where(
        col(Answer.survey_id) == survey_id,
        col(Answer.question_id) == question_id,
        col(Answer.text).is_not(None),
    )
    mine = select(func.count()).where(
        col(Coding.survey_id) == survey_id,
        col(Coding.question_id) == question_id,
        col(Coding.coder) == principal.name,
    )
    visible = principal.visible_sites()
    if visible is not None:
        answers = answers.where(col(Answer.site).in_(visible))
        mine = mine.join(Answer, col(Answer.response_pk) == col(Coding.response_pk)).where(
            col(Answer.question_id) == question_id, col(Answer.site).in_(visible)
        )
    else:
        mine = mine.select_from(Coding)
    done = session.execute(mine).scalar_one()
    where = str(session.get_bind().engine.url)
    key = (where, survey_id, question_id, None if visible is None else tuple(visible))
    total = _totals.get(key)
    if total is None or total < done:
        total = _totals.put(key, int(session.execute(answers).scalar_one()))
    return Progress(done=int(done), total=int(total))


def coders(
    session: Session, *, principal: Principal, survey_id: str, question_id: str
) -> list[str]:
    """The keys that have coded the question (evaluator, admin: who to compare)."""
    require(principal, Action.read_agreement)
    codebook_row(session, survey_id=survey_id, question_id=question_id)
    query = (
        select(col(Coding.coder))
        .where(col(Coding.survey_id) == survey_id, col(Coding.question_id) == question_id)
        .group_by(col(Coding.coder))
        .order_by(col(Coding.coder))
    )
    return list(session.execute(query).scalars())


def responses_by_site_and_wave(
    session: Session, *, principal: Principal, survey_id: str
) -> dict[tuple[str, str], int]:
    """How many responses each (site, wave) holds, within the caller's sites."""
    require(principal, Action.read_statistics)
    query = (
        select(col(Response.site), col(Response.wave), func.count())
        .where(col(Response.survey_id) == survey_id)
        .group_by(col(Response.site), col(Response.wave))
    )
    visible = principal.visible_sites()
    if visible is not None:
        query = query.where(col(Response.site).in_(visible))
    return {(site, wave): int(n) for site, wave, n in session.execute(query)}


@dataclass(frozen=True)
class SurveyReleases:
    survey_id: str
    title: str
    releases: list[Release]


def readable_releases(session: Session, *, principal: Principal) -> list[SurveyReleases]:
    """Every survey's releases the key may read (published, not withdrawn), oldest first."""
    require(principal, Action.read_releases)
    rows = session.execute(
        select(Release)
        .where(col(Release.withdrawn_at).is_(None))
        .order_by(col(Release.survey_id), col(Release.pk))
    ).scalars()
    titles = {row[0]: row[1] for row in session.execute(select(col(Survey.id), col(Survey.title)))}
    found: dict[str, SurveyReleases] = {}
    for release in rows:
        if visible_to(principal, release):
            survey = release.survey_id
            entry = found.setdefault(survey, SurveyReleases(survey, titles.get(survey, survey), []))
            entry.releases.append(release)
    return list(found.values())
