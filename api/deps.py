"""Dependencies: the request's session (which owns the transaction), the calling key,
the survey named in the path."""

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Annotated
from weakref import WeakKeyDictionary

from anyio import Lock, Semaphore
from anyio.lowlevel import RunVar
from fastapi import Depends, HTTPException, Path, Request
from fastapi.concurrency import contextmanager_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from api.limits import RateLimits
from schemas.base import SLUG_PATTERN
from service.database import Database
from service.errors import Unauthenticated
from service.keys import Principal, authenticate
from service.settings import Settings
from service.surveys import load_compiled
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


@dataclass
class _Turns:
    """Where this process's requests wait for the database: in the event loop, holding
    no worker thread and no connection."""

    slots: Semaphore  # one per pooled connection
    writer: Lock | None  # SQLite only: one write transaction at a time


_turns: RunVar["WeakKeyDictionary[Database, _Turns]"] = RunVar("hearme_db_turns")


def _turns_for(database: Database, pool_size: int) -> _Turns:
    """The turns of this database in the running event loop."""
    try:
        by_database = _turns.get()
    except LookupError:
        by_database = WeakKeyDictionary()
        _turns.set(by_database)
    turns = by_database.get(database)
    if turns is None:
        writer = Lock() if database.dialect == "sqlite" else None
        turns = by_database[database] = _Turns(Semaphore(pool_size), writer)
    return turns


@asynccontextmanager
async def turn(database: Database, pool_size: int, *, write: bool) -> AsyncIterator[None]:
    """Wait, in the event loop, for this request's turn at the database.

    A request holding a connection may still need worker threads to finish (its
    dependencies and route each take one in turn). Were requests to wait for a connection
    inside a thread, with more requests in flight than connections, the waiters could take
    every thread while the holders need one: all stall until the pool times out (500s).
    So requests first wait here, FIFO, for a slot (at most `db_pool_size` at once, so a
    checkout never waits and no overflow connection is opened and closed per request),
    and on SQLite, writers also for their turn: a write transaction holds the database's
    one write lock from its first statement (BEGIN IMMEDIATE) to its commit, and writers
    queued here are handed it at once rather than found by SQLite's sleeping busy
    handler. Other processes are still kept out by SQLite's own lock.
    """
    turns = _turns_for(database, pool_size)
    async with turns.writer if write and turns.writer is not None else nullcontext(), turns.slots:
        yield


def database_turn(request: Request, *, write: bool) -> AbstractAsyncContextManager[None]:
    """This request's turn (`turn`)."""
    return turn(get_database(request), get_settings(request).db_pool_size, write=write)


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


def _authenticate(request: Request, session: Session, credentials: Credentials) -> Principal:
    """The calling key, within its rate limits (api/limits.py): an address over its failed
    authentications is refused first, then each authenticated request counts for its key."""
    limits: RateLimits = request.app.state.rate_limits
    address = request.client.host if request.client else "unknown"
    limits.check_address(address)
    try:
        principal = authenticate(session, token=credentials.credentials if credentials else None)
    except Unauthenticated:
        limits.authentication_failed(address)
        raise
    request.state.key_name = principal.name  # for the access log: the key's name, never the key
    request.state.principal = principal  # for the audit record (api/audit.py)
    limits.hit_key(principal.name)
    return principal


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


def get_submitter(request: Request, credentials: Credentials, survey: SurveyId) -> Submitter:
    """Authenticate, then find the survey, in a short read transaction of its own (401,
    then 404, before the body's 422, as on other routes), so that the submission's write
    transaction runs start to finish in one worker thread (`api.responses`)."""
    with get_database(request).session(write=False) as session:
        principal = _authenticate(request, session, credentials)
        return Submitter(principal, load_compiled(session, survey_id=survey))


SubmitterDep = Annotated[Submitter, Depends(get_submitter)]


async def require_json(request: Request) -> None:
    """415 for a body that is not JSON, before FastAPI would misreport it as a 422."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in JSON_TYPES and not media_type.endswith("+json"):
        raise HTTPException(415, "the body must be application/json")
