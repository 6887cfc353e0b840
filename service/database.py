"""Engines, sessions and migrations for SQLite (embedded default) and PostgreSQL."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from service.settings import Settings

WRITE_OPTION = "hearme_write"


def _sqlite_pragmas(synchronous: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy issue BEGIN itself so that a whole request is one transaction.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # A write transaction takes the write lock at BEGIN: concurrent writers then queue on
    # busy_timeout instead of one failing with "database is locked" when it upgrades a
    # read lock. Reads begin deferred and run beside writers under WAL.
    write = conn.get_execution_options().get(WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# SQLSTATEs and SQLite result codes that mean "no room left" (a 507, contract §11).
PG_DISK_FULL = {"53100", "53200"}  # disk_full, out_of_memory
SQLITE_FULL = 13


def storage_full(exc: BaseException) -> bool:
    """The database refused a write for want of space (SQLite SQLITE_FULL, PostgreSQL
    disk_full). Nothing was half-written: the transaction was rolled back."""
    orig = getattr(exc, "orig", exc)
    if getattr(orig, "sqlite_errorcode", None) == SQLITE_FULL:
        return True
    return getattr(orig, "sqlstate", None) in PG_DISK_FULL


def unreachable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection (or, on SQLite, stayed
    locked past the busy timeout): the request may be retried; a 503."""
    return isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _pg_connect_args(settings: Settings) -> dict[str, Any]:
    """Time-outs so that an unreachable PostgreSQL is an error within seconds, never a
    hang: connecting (`connect_timeout`), sent data never acknowledged (a dropped network,
    `tcp_user_timeout`), an idle connection whose peer vanished (keepalives), and a
    statement that runs too long on the server (`statement_timeout`)."""
    args: dict[str, Any] = {
        "connect_timeout": settings.db_connect_timeout,
        "tcp_user_timeout": settings.db_connect_timeout * 1000,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 2,
        "keepalives_count": 3,
    }
    if settings.db_statement_timeout:
        args["options"] = f"-c statement_timeout={settings.db_statement_timeout * 1000}"
    return args


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_size,
        )
        event.listen(engine, "connect", _sqlite_pragmas(settings.sqlite_synchronous))
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_size,
        pool_pre_ping=True,  # a connection broken by an outage is replaced, not used
        pool_timeout=settings.db_connect_timeout,
        connect_args=_pg_connect_args(settings),
    )


class Database:
    """The engine of one process, with separate read and write views of its pool."""

    def __init__(self, settings: Settings) -> None:
        self.engine = create_db_engine(settings)
        self.write_engine = self.engine.execution_options(**{WRITE_OPTION: True})
        self.dialect = self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        with session_scope(self.write_engine if write else self.engine) as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def migrations_dir() -> Path:
    """The Alembic scripts: packaged in the wheel, or the repository's `alembic/`."""
    packaged = Path(__file__).parent / "migrations"
    return packaged if packaged.is_dir() else Path(__file__).parent.parent / "alembic"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings) -> None:
    """Migrate the database to head; creates an embedded SQLite file on first use."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(settings.database_url), "head")


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
