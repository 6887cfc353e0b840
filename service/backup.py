"""Backups (issue 10): SQLite through its online backup API, safe while hearme serves;
PostgreSQL with its own tools, whose commands are given rather than run (they need the
server's matching client version and, often, credentials hearme should not handle).
"""

import os
import shlex
import sqlite3
from pathlib import Path

from sqlalchemy.engine import URL, make_url


class BackupError(Exception):
    pass


def sqlite_backup(database: str, target: Path) -> int:
    """Copy the SQLite database at `database` to `target` page by page with SQLite's
    online backup API: a consistent snapshot even while other processes write (each
    step takes the read lock briefly; a write between steps restarts the copy of what
    changed). The copy is written beside `target` and renamed into place only once it
    passed `PRAGMA integrity_check`, so a failed backup never leaves a half file under
    the name. Returns the size of the copy in bytes."""
    source_path = Path(database).expanduser().resolve()
    if not source_path.is_file():
        raise BackupError(f"no SQLite database at {source_path}")
    target = target.expanduser().resolve()
    if target == source_path:
        raise BackupError("the backup cannot be the database itself")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    try:
        copy = sqlite3.connect(partial)
        try:
            source.backup(copy, pages=1024)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            (verdict,) = copy.execute("PRAGMA integrity_check").fetchone()
        finally:
            copy.close()
    finally:
        source.close()
    if verdict != "ok":
        partial.unlink(missing_ok=True)
        raise BackupError(f"the copy failed its integrity check: {verdict}")
    os.replace(partial, target)
    return target.stat().st_size


def _libpq_url(url: URL) -> str:
    """The URL as libpq tools read it, without the password (give it through PGPASSWORD
    or ~/.pgpass: a command line is visible to every user of the machine)."""
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False)


def pg_dump_commands(database_url: str, target: Path) -> tuple[str, str]:
    """The commands that back up and restore this PostgreSQL database."""
    url = make_url(database_url)
    dbname = _libpq_url(url)
    dump = shlex.join(
        ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--dbname={dbname}"]
    )
    restore = shlex.join(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", f"--dbname={dbname}", str(target)]
    )
    return dump, restore
