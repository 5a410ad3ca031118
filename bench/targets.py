"""The stacks under test: a server (perdure's or the official Restate server) and a deployment of
the bench services (written with the official SDK or with perdure's), each a real subprocess on
loopback ports; or ``perdure dev``, where server and services are one process.

Deployments are served the way a user serves them: the official SDK's app by hypercorn with
bench/hypercorn.toml, perdure's by ``perdure.serve``. Reuses the test helpers (tests/support),
which already start, wait for and clean up both servers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.official import REPO, RestateServer, find_restate_server
from tests.support.perdure_server import PerdureServer
from tests.support.processes import Child, free_port, wait_http, wait_tcp

DEPLOYMENT_APP = "bench.services:app"
PERDURE_APP = "bench.perdure_services"
HYPERCORN_CONFIG = Path(__file__).resolve().parent / "hypercorn.toml"


@dataclass(frozen=True)
class Stack:
    """What serves the requests: ``server`` (perdure, official, or dev: one process for both)
    and ``sdk`` (the SDK the bench services are written with)."""

    name: str
    server: str
    sdk: str
    title: str
    store: str = "sqlite"
    """perdure's store: sqlite (in the data dir) or postgres (a throwaway PostgreSQL server,
    tests/support/postgres.py, fsync on)."""


STACKS: dict[str, Stack] = {
    s.name: s
    for s in [
        Stack("official", "official", "official", "official server + official SDK"),
        Stack("perdure-official-sdk", "perdure", "official", "perdure server + official SDK"),
        Stack("perdure", "perdure", "perdure", "perdure server + perdure SDK"),
        Stack("official-perdure-sdk", "official", "perdure", "official server + perdure SDK"),
        Stack("dev", "dev", "perdure", "perdure dev (server and services in one process)"),
        Stack(
            "perdure-postgres",
            "perdure",
            "perdure",
            "perdure server on PostgreSQL + perdure SDK",
            store="postgres",
        ),
        Stack(
            "perdure-workers2",
            "perdure-workers2",
            "perdure",
            "perdure server --workers 2 + perdure SDK",
        ),
    ]
}
BASELINE = "official"
"""The stack every other one is compared with."""


@dataclass(frozen=True)
class Target:
    """A running stack with the bench services registered."""

    stack: Stack
    ingress: str
    admin: str
    pid: int
    """The server's process id (for the profiler and the CPU count)."""
    sdk_pid: int | None
    """The deployment's process id; None when the services run inside the server (dev)."""

    @property
    def kind(self) -> str:
        return self.stack.name


@dataclass(frozen=True)
class Deployment:
    url: str
    pid: int


class TargetUnavailable(Exception):
    """The stack cannot be started here (e.g. the official binary is not installed)."""


@contextmanager
def deployment(tmp: Path, *, sdk: str = "official", workers: int = 1) -> Iterator[Deployment]:
    """Serve the bench services written with ``sdk`` (h2c + HTTP/1.1 on one port)."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    if sdk == "official":
        args = [sys.executable, "-m", "hypercorn", "-c", str(HYPERCORN_CONFIG),
                "--bind", f"127.0.0.1:{port}"]  # fmt: skip
        if workers > 1:
            args += ["--workers", str(workers)]
        args.append(DEPLOYMENT_APP)
    elif sdk == "perdure":
        args = [sys.executable, "-m", PERDURE_APP, str(port)]
    else:
        raise ValueError(f"unknown sdk {sdk!r}")
    child = Child(f"bench deployment ({sdk} SDK)", args, tmp / "deployment.log", cwd=REPO)
    try:
        wait_tcp(port, "bench deployment", child)
        yield Deployment(f"http://127.0.0.1:{port}", child.proc.pid)
    finally:
        child.stop()


@contextmanager
def start(stack: Stack, tmp: Path, *, deployment_workers: int = 1) -> Iterator[Target]:
    """Start the whole stack afresh under ``tmp``: its deployment, then its server."""
    if stack.server == "official" and find_restate_server() is None:
        raise TargetUnavailable("the official restate-server is not installed (scripts/setup)")
    if stack.server == "dev":
        with _dev(stack, tmp) as target:
            yield target
        return
    workers = deployment_workers if stack.sdk == "official" else 1
    with (
        deployment(tmp / "deployment", sdk=stack.sdk, workers=workers) as dep,
        _server(stack, tmp / "server", dep.url, dep.pid) as target,
    ):
        yield target


@contextmanager
def _server(stack: Stack, tmp: Path, url: str, sdk_pid: int | None) -> Iterator[Target]:
    tmp.mkdir(parents=True, exist_ok=True)
    if stack.server.startswith("perdure"):
        args = ["--workers", "2"] if stack.server == "perdure-workers2" else []
        with PerdureServer.start(tmp, args=args, store=stack.store) as perdure:
            perdure.register(url)
            yield Target(stack, perdure.ingress, perdure.admin, perdure.child.proc.pid, sdk_pid)
    elif stack.server == "official":
        if find_restate_server() is None:
            raise TargetUnavailable("the official restate-server is not installed (scripts/setup)")
        with RestateServer.start(tmp) as official:
            official.register(url)
            yield Target(stack, official.ingress, official.admin, official.child.proc.pid, sdk_pid)
    else:
        raise ValueError(f"unknown server {stack.server!r}")


@contextmanager
def _dev(stack: Stack, tmp: Path) -> Iterator[Target]:
    """``perdure dev bench.perdure_services``: one process, the services mounted in-process."""
    tmp.mkdir(parents=True, exist_ok=True)
    ingress, admin = free_port(), free_port()
    child = Child(
        "perdure dev",
        [sys.executable, "-m", "perdure.cli", "dev", PERDURE_APP,
         "--data-dir", str(tmp / "dev-data"),
         "--ingress-bind", f"127.0.0.1:{ingress}", "--admin-bind", f"127.0.0.1:{admin}",
         "--log-level", "warning"],
        tmp / "perdure-dev.log",
        cwd=REPO,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{admin}/health", "perdure dev admin", child)
        wait_http(f"http://127.0.0.1:{ingress}/restate/health", "perdure dev ingress", child)
        yield Target(
            stack, f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{admin}",
            child.proc.pid, None,
        )  # fmt: skip
    finally:
        child.stop()
