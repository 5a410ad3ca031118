"""The systems under test: perdure's server or the official Restate server, each a real subprocess
on loopback ports, and the one deployment (hypercorn serving bench/services.py) both of them invoke.

Reuses the test helpers (tests/support), which already start, wait for and clean up both servers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.official import REPO, RestateServer, find_restate_server
from tests.support.perdure_server import PerdureServer
from tests.support.processes import Child, free_port, wait_tcp

SERVERS = ("perdure", "official")
DEPLOYMENT_APP = "bench.services:app"


@dataclass(frozen=True)
class Target:
    """A running server with the bench deployment registered."""

    kind: str
    ingress: str
    admin: str
    pid: int
    """The server's process id (for the profiler)."""


@dataclass(frozen=True)
class Deployment:
    url: str
    pid: int


class TargetUnavailable(Exception):
    """The server cannot be started here (e.g. the official binary is not installed)."""


@contextmanager
def deployment(tmp: Path, *, workers: int = 1) -> Iterator[Deployment]:
    """Serve the bench services with hypercorn (h2c + HTTP/1.1 on one port).

    hypercorn ends an HTTP/2 connection after 1000 requests by default (a GOAWAY, after which it
    can no longer answer the streams it accepted); a server under load then sees attempts hang
    or fail. A deployment should not do that, so the limit is lifted here."""
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = tmp / "hypercorn.toml"
    config.write_text("keep_alive_max_requests = 1000000000000\n")
    args = [sys.executable, "-m", "hypercorn", "--config", str(config)]
    args += ["--bind", f"127.0.0.1:{port}"]
    if workers > 1:
        args += ["--workers", str(workers)]
    child = Child("bench deployment", [*args, DEPLOYMENT_APP], tmp / "deployment.log", cwd=REPO)
    try:
        wait_tcp(port, "bench deployment", child)
        yield Deployment(f"http://127.0.0.1:{port}", child.proc.pid)
    finally:
        child.stop()


@contextmanager
def server(kind: str, tmp: Path, deployment_url: str) -> Iterator[Target]:
    """Start the ``kind`` server with a fresh data dir under ``tmp``; register the deployment."""
    tmp.mkdir(parents=True, exist_ok=True)
    if kind == "perdure":
        with PerdureServer.start(tmp) as perdure:
            perdure.register(deployment_url)
            yield Target(kind, perdure.ingress, perdure.admin, perdure.child.proc.pid)
    elif kind == "official":
        if find_restate_server() is None:
            raise TargetUnavailable("the official restate-server is not installed (scripts/setup)")
        with RestateServer.start(tmp) as official:
            official.register(deployment_url)
            yield Target(kind, official.ingress, official.admin, official.child.proc.pid)
    else:
        raise ValueError(f"unknown server {kind!r}; choose from {', '.join(SERVERS)}")
