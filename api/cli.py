"""The `hearme` command (contract §3): another front door onto the same service layer."""

import logging.config
import os
import shutil
import sqlite3
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from sqlalchemy.engine import make_url

from api import deliverer
from api.logs import logging_config
from schemas.base import utcnow
from schemas.keys import KeyCreate, Role
from service.backup import BackupError, pg_dump_commands, sqlite_backup
from service.database import Database, upgrade
from service.demo import RELEASE_ID, load_demo, publish_demo_release
from service.errors import DomainError
from service.keys import create_key, free_key_name
from service.settings import Settings
from service.surveys import recount_stale_surveys

app = typer.Typer(help="hearme: survey backend for multi-site evaluations.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")

Host = Annotated[str, typer.Option(help="Interface to bind.")]
Port = Annotated[int, typer.Option(help="TCP port.")]
Workers = Annotated[int, typer.Option(min=1, help="Server processes.")]


WORKER_HEALTHCHECK_TIMEOUT = 30


def _serve(settings: Settings, host: str, port: int, workers: int) -> None:
    supervisor = None
    if settings.webhook_dispatch:
        # Webhooks are delivered by a process of their own beside the workers
        # (api/deliverer.py); the workers, which read their settings from the
        # environment, then dispatch none themselves.
        supervisor = deliverer.Supervisor(env=dict(os.environ))
        os.environ["HEARME_WEBHOOK_DISPATCH"] = "false"
        supervisor.start()
    metrics_dir = None
    if workers > 1 and not settings.prometheus_multiproc_dir:
        # Workers are separate processes: prometheus_client sums them through files, and
        # reads where from its own variable, which the workers inherit.
        metrics_dir = tempfile.mkdtemp(prefix="hearme-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run(
            "api.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=logging_config(settings.log_level),
            access_log=False,
            server_header=False,
            # A worker must answer the supervisor's health check within this: uvicorn's
            # 5 s default killed, again and again, workers still importing the app on a
            # loaded machine (8 s to start with the load average at 5x the cores).
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
        )
    finally:
        if supervisor is not None:
            supervisor.stop()
        if metrics_dir is not None:  # ours, made above: removed once the workers are gone
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _maintenance(settings: Settings) -> Settings:
    """The settings for the CLI's own database work: no statement time-out, since a cell
    rebuild or a demo load may take minutes on a large study."""
    return settings.model_copy(update={"db_statement_timeout": 0})


def _migrate(settings: Settings) -> None:
    """Alembic to head, then recount the statistics cells of surveys stored without them."""
    upgrade(settings)
    database = Database(_maintenance(settings))
    try:
        with database.session(write=True) as session:
            for survey_id in recount_stale_surveys(session):
                typer.echo(f"recounted the statistics of survey {survey_id!r}")
    finally:
        database.dispose()


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 1) -> None:
    """Migrate the database to head, then serve."""
    settings = Settings()
    _migrate(settings)
    _serve(settings, host, port, workers)


@app.command()
def deliver(
    supervised: Annotated[
        bool, typer.Option(hidden=True, help="Started by `hearme serve`: stop with it.")
    ] = False,
) -> None:
    """Deliver webhooks only, serving no HTTP (what `hearme serve` runs beside its
    workers; alone, a delivery-only replica)."""
    settings = Settings()
    logging.config.dictConfig(logging_config(settings.log_level))
    if not supervised:
        _migrate(settings)
    deliverer.run(settings, supervised=supervised)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to head (Alembic)."""
    _migrate(Settings())
    typer.echo("database at head")


@db_app.command("backup")
def db_backup(
    path: Annotated[Path, typer.Argument(help="Where to write the backup.")],
) -> None:
    """Back up the database: SQLite is copied now (safe while serving); for PostgreSQL,
    print the pg_dump command to run (and the pg_restore one)."""
    settings = Settings()
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        dump, restore = pg_dump_commands(settings.database_url, path)
        typer.echo("# back up (password through PGPASSWORD or ~/.pgpass):")
        typer.echo(dump)
        typer.echo("# restore into an empty database, then `hearme db upgrade`:")
        typer.echo(restore)
        return
    try:
        size = sqlite_backup(url.database or "", path)
    except (BackupError, sqlite3.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"backed up {url.database} to {path} ({size} bytes, integrity checked)")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="A unique name for the key.")],
    role: Annotated[Role, typer.Option(help="The key's role.")],
    site: Annotated[list[str] | None, typer.Option(help="Bind to a site; repeatable.")] = None,
    expires_in: Annotated[
        float | None,
        typer.Option(metavar="DAYS", help="Expire after DAYS days (more than 0)."),
    ] = None,
) -> None:
    """Create a key; the key itself is printed alone on the last line."""
    if expires_in is not None and not 0 < expires_in < 36_500:
        raise typer.BadParameter("must be more than 0 and under 36500", param_hint="--expires-in")
    settings = Settings()
    upgrade(settings)
    database = Database(settings)
    expires_at = utcnow() + timedelta(days=expires_in) if expires_in is not None else None
    try:
        with database.session() as session:
            data = KeyCreate(name=name, role=role, sites=site, expires_at=expires_at)
            key, token = create_key(session, data=data)
    except DomainError as exc:
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(1) from exc
    finally:
        database.dispose()
    bound = ", ".join(key.sites) if key.sites else "all sites"
    until = f", expiring at {key.expires_at.isoformat()}" if key.expires_at else ""
    typer.echo(f"created key {key.name!r} with role {key.role} for {bound}{until}")
    typer.echo(token)


@app.command()
def demo(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 1) -> None:
    """Load the seed study and its synthetic data set, print an admin key, then serve."""
    settings = Settings()
    _migrate(settings)
    database = Database(_maintenance(settings))
    try:
        with database.session() as session:
            survey_id, stored = load_demo(session)
            published = publish_demo_release(
                session,
                survey_id,
                min_cell=settings.min_cell,
                audit_seconds=settings.release_audit_seconds,
            )
            name = free_key_name(session, prefix="demo-admin")
            key, token = create_key(session, data=KeyCreate(name=name, role=Role.admin))
    finally:
        database.dispose()
    loaded = f"{stored} responses loaded" if stored else "already loaded"
    typer.echo(f"survey {survey_id!r}: {loaded}")
    if published:
        typer.echo(f"release {RELEASE_ID!r} published (what reader keys see)")
    typer.echo(f"admin key {key.name!r}; try:")
    typer.echo(f"  curl -H 'Authorization: Bearer <key>' http://{host}:{port}/v1/surveys")
    typer.echo(token)
    _serve(settings, host, port, workers)


def main() -> None:
    app()
