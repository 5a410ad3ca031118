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

from tests.support.postgres import shared_server, wanted_store
from tests.support.processes import Child, free_port, wait_http

REPO = Path(__file__).resolve().parents[2]


@dataclass
class PerdureServer:
    child: Child
    ingress: str
    admin: str
    data_dir: Path
    tmp: Path
    ingress_port: int
    admin_port: int
    args: tuple[str, ...] = ()
    starts: int = 1
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
        data = tmp / "perdure-data"
        server = cls(
            _spawn(tmp, data, ingress_port, admin_port, 1, tuple(args)),
            ingress=f"http://127.0.0.1:{ingress_port}",
            admin=f"http://127.0.0.1:{admin_port}",
            data_dir=data,
            tmp=tmp,
            ingress_port=ingress_port,
            admin_port=admin_port,
            args=tuple(args),
        )
        try:
            server._wait()
            yield server
        finally:
            server.http.close()
            server.child.stop()

    def _wait(self) -> None:
        wait_http(self.admin + "/health", "perdure server admin", self.child)
        wait_http(self.ingress + "/restate/health", "perdure server ingress", self.child)

    def kill(self) -> None:
        """SIGKILL the server (no graceful stop)."""
        self.child.kill()

    def restart(self) -> None:
        """Start again on the same data directory and ports (after kill() or stop)."""
        self.child.stop()
        self.starts += 1
        self.child = _spawn(self.tmp, self.data_dir, self.ingress_port, self.admin_port,
                            self.starts, self.args)  # fmt: skip
        self._wait()

    def register(self, uri: str, *, use_http_11: bool = False, force: bool = True) -> Any:
        resp = self.http.post(
            self.admin + "/deployments",
            json={"uri": uri, "use_http_11": use_http_11, "force": force},
        )
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"registering {uri}: {resp.status_code} {resp.text}")
        return resp.json()

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

    def log_tail(self) -> str:
        return self.child.log_tail(80)


def _spawn(  # noqa: PLR0917
    tmp: Path, data: Path, ingress_port: int, admin_port: int, n: int, args: tuple[str, ...]
) -> Child:
    return Child(
        "perdure server",
        [
            sys.executable, "-m", "perdure.cli", "server",
            "--data-dir", str(data),
            "--ingress-bind", f"127.0.0.1:{ingress_port}",
            "--admin-bind", f"127.0.0.1:{admin_port}",
            *args,
        ],
        tmp / f"perdure-server-{n}.log",
        cwd=REPO,
    )  # fmt: skip


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
