"""Real `hearme serve` processes over loopback, each on a fresh database.

`fresh_database(engine)` gives the URL of a new database ('sqlite': a file in the
test's tmp_path; 'postgresql': a new database, dropped after the test);
`start_server(url, workers=...)` migrates and serves it on a free port of 127.0.0.1 and
waits until every worker has started. Keys come from `hearme keys create` against the
same URL (`Server.create_key`). Every test here is marked `server`.

Servers run in their own session (process group), so that a test can SIGKILL the
supervisor and its workers together. Every server still running is stopped (SIGTERM,
then SIGKILL) when the test ends; each server's stdout and stderr go to files kept in
the test's tmp_path for debugging.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL, fresh_pg_database, require_pg

# A bound, not a measurement: two workers took 44 s to migrate, import and start with the
# load average at six times the cores.
STARTUP_TIMEOUT = 90.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.server)


def hearme_command() -> list[str]:
    """The venv's `hearme` script next to this interpreter, or the same entry point."""
    script = Path(sys.executable).parent / "hearme"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from api.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEARME_") and k != "PROMETHEUS_MULTIPROC_DIR"
    }
    env["HEARME_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def create_key(database_url: str, *, name: str, role: str, sites: tuple[str, ...] = ()) -> str:
    """`hearme keys create` against the database; the key is the last line of stdout."""
    command = [*hearme_command(), "keys", "create", "--name", name, "--role", role]
    for site in sites:
        command += ["--site", site]
    done = subprocess.run(
        command,
        env=server_env(database_url),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip().splitlines()[-1]
    assert token.startswith("hm_"), done.stdout
    return token


@dataclass
class Server:
    """One `hearme serve` process group."""

    database_url: str
    workers: int
    port: int
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    tmp_dir: Path
    _files: list[Any] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30.0, **kwargs)

    def create_key(self, *, name: str, role: str, sites: tuple[str, ...] = ()) -> str:
        return create_key(self.database_url, name=name, role=role, sites=sites)

    def output(self) -> str:
        """Everything the server wrote, stdout then stderr."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        """Until /healthz answers and every worker has logged its startup (bounded)."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"server exited with {self.process.returncode}:\n{self.output()[-4000:]}"
                    )
                started = self.stderr_path.read_text(errors="replace").count(
                    "Application startup complete"
                )
                if started >= self.workers:
                    try:
                        if client.get("/healthz").status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL the whole process group (supervisor and workers), as a crash would,
        and wait until no process of the group is left."""
        self._signal_group(signal.SIGKILL)
        self._reap(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise AssertionError(f"process group {self.process.pid} outlived SIGKILL")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL whatever is left of the group."""
        if self.process.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_TIMEOUT)
        # Workers may outlive a supervisor that was killed or hung: clear the group.
        self._signal_group(signal.SIGKILL)
        self._reap(STOP_TIMEOUT)

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)  # its own session: pgid == pid

    def _reap(self, timeout: float) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=timeout)
        for file in self._files:
            file.close()
        self._files.clear()


def launch(
    database_url: str, *, workers: int, directory: Path, env: dict[str, str] | None = None
) -> Server:
    """Start `hearme serve` (it migrates first); `Server.wait_ready` waits for it."""
    port = free_port()
    tag = f"server-{port}"
    stdout_path = directory / f"{tag}.stdout"
    stderr_path = directory / f"{tag}.stderr"
    stdout = stdout_path.open("wb")
    stderr = stderr_path.open("wb")
    scratch = directory / f"{tag}.tmp"  # the server's TMPDIR, to check what it leaves
    scratch.mkdir()
    command = [*hearme_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--workers", str(workers)],
        env=server_env(database_url, TMPDIR=str(scratch), **(env or {})),
        cwd=directory,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    server = Server(database_url, workers, port, process, stdout_path, stderr_path, scratch)
    server._files += [stdout, stderr]
    return server


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[-1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """fresh_database(engine) -> the URL of a new, empty database ('sqlite' or
    'postgresql'); PostgreSQL databases are dropped after the test."""
    created: list[str] = []

    def make(engine: str) -> str:
        if engine == "sqlite":
            return f"sqlite:///{tmp_path / f'hearme-{uuid.uuid4().hex[:8]}.db'}"
        require_pg()
        url = fresh_pg_database(f"hearme_server_{uuid.uuid4().hex[:12]}")
        created.append(url)
        return url

    yield make
    for url in created:
        drop_pg_database(url)


StartServer = Callable[..., Server]


@pytest.fixture
def start_server(tmp_path: Path, fresh_database: Callable[[str], str]) -> Iterator[StartServer]:
    """start_server(database_url, workers=1, env=None) -> a ready Server; all are stopped
    at the end of the test, before its databases are dropped."""
    servers: list[Server] = []

    def start(database_url: str, *, workers: int = 1, env: dict[str, str] | None = None) -> Server:
        server = launch(database_url, workers=workers, directory=tmp_path, env=env)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on SQLite and on PostgreSQL."""
    name: str = request.param
    return name
