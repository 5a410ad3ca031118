"""perdure's own server started for tests as a real subprocess (``python -m perdure.cli server``),
with the same surface as ``tests.support.official.RestateServer``: ``ingress``, ``admin``,
``register(uri, use_http_11=...)``. Crash tests use ``kill()`` (SIGKILL) and ``restart()``.

    with PerdureServer.start(tmp_path) as server:
        with serve_asgi("tests.server.official_services:app", tmp_path) as url:
            server.register(url)
            httpx.post(f"{server.ingress}/Greeter/greet", json="Ann")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.official import post_deployment
from tests.support.postgres import shared_server, wanted_store
from tests.support.processes import Child, Restartable, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


@dataclass
class PerdureServer(Restartable):
    ingress: str
    admin: str
    data_dir: Path
    tmp: Path
    ingress_port: int
    admin_port: int
    args: tuple[str, ...] = ()
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    @classmethod
    @contextmanager
    def start(
        cls, tmp: Path, *, args: Sequence[str] = (), store: str | None = None
    ) -> Iterator[PerdureServer]:
        """Start on free loopback ports with a fresh data dir under ``tmp``; ``args`` are extra
        ``perdure server`` flags (e.g. ``["--inactivity-timeout", "0s"]``). ``store``: "sqlite"
        or "postgres" (a fresh database on the session's PostgreSQL server); by default
        $PERDURE_TEST_STORE, else sqlite."""
        if (store or wanted_store()) == "postgres":
            args = (*args, "--store", shared_server().create_database())
        ingress_port, admin_port = free_port(), free_port()
        server = cls(
            ingress=f"http://127.0.0.1:{ingress_port}",
            admin=f"http://127.0.0.1:{admin_port}",
            data_dir=tmp / "perdure-data",
            tmp=tmp,
            ingress_port=ingress_port,
            admin_port=admin_port,
            args=tuple(args),
        )
        try:
            server._spawn()
            yield server
        finally:
            server.http.close()
            server.stop()

    def _spawn(self) -> None:
        command = server_command(self.data_dir, self.ingress_port, self.admin_port, *self.args)
        self.spawn("perdure server", command, self.tmp / "perdure-server", cwd=REPO)
        wait_ready("perdure server", self.admin, self.ingress, self.child)

    def restart(self) -> None:
        """Start again on the same data directory and ports (after kill() or stop)."""
        self.stop()
        self._spawn()

    def register(self, uri: str, *, use_http_11: bool = False, force: bool = True) -> Any:
        return post_deployment(self.http, self.admin, uri, use_http_11=use_http_11, force=force)

    def invocations(self) -> list[dict[str, Any]]:
        resp = self.http.get(self.admin + "/invocations")
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["invocations"]
        return rows

    def worker_pids(self) -> list[int]:
        """The worker processes of ``--workers N`` (the supervisor's children), oldest first."""
        pid = self.child.proc.pid
        try:
            text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(p) for p in text.split())


def server_command(data_dir: Path, ingress_port: int, admin_port: int, *args: str) -> list[str]:
    """``perdure server`` on ``data_dir`` and the loopback ports, with the extra flags ``args``."""
    return [
        sys.executable, "-m", "perdure.cli", "server",
        "--data-dir", str(data_dir),
        "--ingress-bind", f"127.0.0.1:{ingress_port}",
        "--admin-bind", f"127.0.0.1:{admin_port}",
        *args,
    ]  # fmt: skip


def wait_ready(what: str, admin: str, ingress: str, child: Child) -> None:
    """Until both the admin API and the ingress answer (or ``child`` exits: its log's tail)."""
    wait_http(admin + "/health", f"{what} admin", child)
    wait_http(ingress + "/restate/health", f"{what} ingress", child)


def wait_until(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)
