"""A throwaway PostgreSQL server for tests: ``initdb`` into a temporary directory (as the
unprivileged ``postgres`` user when run as root: PostgreSQL refuses root), a random loopback port,
fsync on, trust authentication for the role ``perdure``. One server per test session; each test
gets a fresh, empty database (``CREATE DATABASE``: a few ms).

    with PostgresServer.start() as pg:
        url = pg.create_database()   # postgresql://perdure@127.0.0.1:PORT/perdure_1

Which store the server tests run on: ``PERDURE_TEST_STORE=postgres`` makes the perdure server
fixtures (tests/support/perdure_server.py) and the ``store_kind`` fixtures use PostgreSQL.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port

USER = "perdure"
ENV_STORE = "PERDURE_TEST_STORE"


def wanted_store() -> str:
    """The store the server tests should use: ``sqlite`` (default) or ``postgres``."""
    return os.environ.get(ENV_STORE, "sqlite")


def bindir() -> Path | None:
    """Where PostgreSQL's server programs are (Debian keeps them off PATH), or None."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def available() -> bool:
    if bindir() is None:
        return False
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PostgresServer:
    root: Path
    port: int
    bin: Path
    runas: list[str]
    _options: str = ""
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def admin_url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    @contextlib.contextmanager
    def start(cls) -> Iterator[PostgresServer]:
        found = bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (scripts/setup installs it)")
        root = Path(tempfile.mkdtemp(prefix="perdure-pg-"))
        runas: list[str] = []
        if os.geteuid() == 0:  # initdb and postgres refuse root: run them as 'postgres'
            user = pwd.getpwnam("postgres")
            os.chown(root, user.pw_uid, user.pw_gid)
            runas = ["runuser", "-u", "postgres", "--"]
        server = cls(root, free_port(), found, runas)
        try:
            server._run("initdb", "-D", str(root / "data"), "-U", USER, "--auth=trust",
                        "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")  # fmt: skip
            server._options = (
                f"-p {server.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=on "
                "-c max_connections=300 -c shared_preload_libraries=pg_stat_statements "
                "-c pg_stat_statements.track=all"
            )
            server._run("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"),
                        "-o", server._options, "-w", "-t", "60", "start")  # fmt: skip
            yield server
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                server._run("pg_ctl", "-D", str(root / "data"), "-m", "immediate", "-w", "stop")
            shutil.rmtree(root, ignore_errors=True)

    def stop(self) -> None:
        """Stop the server (fast shutdown: every connection is cut); ``resume`` starts it again."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"),
                  "-o", self._options, "-w", "-t", "60", "start")  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        subprocess.run([*self.runas, str(self.bin / program), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/")  # fmt: skip

    def create_database(self, prefix: str = "perdure") -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join((self.root / "log").read_text().splitlines()[-lines:])
        except OSError:
            return ""


_shared: list[PostgresServer] = []
_stack = contextlib.ExitStack()


def shared_server() -> PostgresServer:
    """The session's server, started on first use and stopped at exit (for helpers that are not
    fixtures, e.g. PerdureServer.start; the ``postgres`` fixture uses the same one)."""
    if not _shared:
        import atexit

        _shared.append(_stack.enter_context(PostgresServer.start()))
        atexit.register(_stack.close)
    return _shared[0]


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's throwaway PostgreSQL server (import this fixture into a conftest)."""
    return shared_server()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres.create_database()


def table_rows(db: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every replicated table of a SQLite store's connection, rows sorted (to compare stores)."""
    from perdure.server.storage.oplog import KEY_LENGTHS

    return {
        table: sorted(tuple(row) for row in db.execute(f"SELECT * FROM {table}").fetchall())
        for table in KEY_LENGTHS
    }
