"""Dependencies: the request's session (which owns the transaction), the calling key,
the survey named in the path."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Annotated

from anyio import Lock
from anyio.lowlevel import RunVar
from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import contextmanager_in_threadpool, run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.limits import RateLimits
from schemas.base import SLUG_PATTERN
from service.database import Database
from service.errors import Unauthenticated
from service.keys import Principal, authenticate, cached_principal, hash_token
from service.settings import Settings
from service.submissions import GroupCommit
from service.surveys import cached_compiled, load_compiled
from service.validation import CompiledSurvey

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
JSON_TYPES = ("application/json",)

bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`.")


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_database(request: Request) -> Database:
    database: Database = request.app.state.database
    return database


def get_group_commit(request: Request) -> GroupCommit:
    group_commit: GroupCommit = request.app.state.group_commit
    return group_commit


@asynccontextmanager
async def database_turn(request: Request, *, write: bool) -> AsyncIterator[None]:
    """This request's turn at the database (`Database.turn`)."""
    async with get_database(request).turn(write=write):
        yield


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Commit when the route returns, roll back if it raises: a request is all or nothing,
    and the commit happens before the response is sent (so a 2xx is durable). The session
    is opened, committed and closed in worker threads, as for a sync dependency, once the
    request has its turn (`database_turn`)."""
    database = get_database(request)
    write = request.method not in READ_METHODS
    async with (
        database_turn(request, write=write),
        contextmanager_in_threadpool(database.session(write=write)) as session,
    ):
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


@contextmanager
def rate_limited(request: Request) -> Iterator[None]:
    """Authentication within the rate limits (api/limits.py): an address over its failed
    authentications is refused first, and a failure inside counts against it."""
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    limits.check_address(address)
    try:
        yield
    except Unauthenticated:
        limits.authentication_failed(address)
        raise


def _authenticated(request: Request, principal: Principal) -> Principal:
    """Note who called, then count the request for its key (429 over its limit)."""
    request.state.key_name = principal.name  # for the access log: the key's name, never the key
    request.state.principal = principal  # for the audit record (api/audit_trail.py)
    limits: RateLimits = request.app.state.rate_limits
    limits.hit_key(principal.name)
    return principal


def _authenticate(request: Request, session: Session, credentials: Credentials) -> Principal:
    with rate_limited(request):
        principal = authenticate(session, token=credentials.credentials if credentials else None)
    return _authenticated(request, principal)


def get_principal(request: Request, session: SessionDep, credentials: Credentials) -> Principal:
    return _authenticate(request, session, credentials)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def get_principal_outside_transaction(request: Request, credentials: Credentials) -> Principal:
    """Authenticate in a short read transaction of its own, for routes (imports) that must
    not hold the request's write transaction open while a large body streams in."""
    with get_database(request).session(write=False) as session:
        return _authenticate(request, session, credentials)


StreamingPrincipalDep = Annotated[Principal, Depends(get_principal_outside_transaction)]

SurveyId = Annotated[str, Path(pattern=SLUG_PATTERN, description="The survey's slug.")]


def get_compiled_survey(
    request: Request, session: SessionDep, _principal: PrincipalDep, survey: SurveyId
) -> CompiledSurvey:
    """The survey of the path, compiled; after authentication, so a stranger gets 401."""
    return load_compiled(session, survey_id=survey, for_write=request.method not in READ_METHODS)


CompiledSurveyDep = Annotated[CompiledSurvey, Depends(get_compiled_survey)]


@dataclass(frozen=True)
class Submitter:
    """The calling key and the survey of the path, for a submission."""

    principal: Principal
    compiled: CompiledSurvey
    cached: bool  # the survey came from this process's cache, unverified


def _read_submitter(request: Request, token: str | None, survey: str) -> Submitter:
    with get_database(request).session(write=False) as session:
        principal = authenticate(session, token=token)
        return Submitter(principal, load_compiled(session, survey_id=survey), cached=False)


_refreshes: RunVar[dict[str, Lock]] = RunVar("hearme_key_refreshes")


@asynccontextmanager
async def _refresh_lock(key_hash: str) -> AsyncIterator[None]:
    """A lock per key being re-read, in this event loop; dropped when nobody holds it."""
    try:
        locks = _refreshes.get()
    except LookupError:
        locks = {}
        _refreshes.set(locks)
    lock = locks.setdefault(key_hash, Lock())
    try:
        async with lock:
            yield
    finally:
        if not lock.locked() and lock.statistics().tasks_waiting == 0:
            locks.pop(key_hash, None)


async def get_submitter(request: Request, credentials: Credentials, survey: SurveyId) -> Submitter:
    """Authenticate, then find the survey (401, then 404, before the body's 422, as on
    other routes): on the hot path from this process's caches alone, with no database
    round trip and no worker thread (a fresh key, the survey as last found current; the
    batch that stores the submission reads the survey's version again). Otherwise in a
    short read transaction of its own."""
    token = credentials.credentials if credentials else None
    with rate_limited(request):
        submitter = await _find_submitter(request, token, survey)
    _authenticated(request, submitter.principal)
    return submitter


async def _find_submitter(request: Request, token: str | None, survey: str) -> Submitter:
    principal = cached_principal(token)
    if principal is None and token:
        # When a key's entry goes stale, the requests that carry it meanwhile wait for the
        # first one's read instead of each reading it (one query per key and second).
        async with _refresh_lock(hash_token(token)):
            principal = cached_principal(token)
            if principal is None:
                submitter = await run_in_threadpool(_read_submitter, request, token, survey)
                principal = submitter.principal
    compiled = cached_compiled(survey)
    if principal is not None and compiled is not None:
        submitter = Submitter(principal, compiled, cached=True)
    else:
        submitter = await run_in_threadpool(_read_submitter, request, token, survey)
    return submitter


async def current_survey(request: Request, survey: str) -> CompiledSurvey:
    """The survey as it stands in the database, for a submission that failed its checks
    against a cached version (it may have been stale)."""

    def read(session: Session) -> CompiledSurvey:
        return load_compiled(session, survey_id=survey)

    return await get_database(request).run(read, write=False)


SubmitterDep = Annotated[Submitter, Depends(get_submitter)]


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON, before FastAPI would misreport it as a 422."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise HTTPException(415, "the body must be application/json")
