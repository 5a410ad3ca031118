"""The official Restate server (npm @restatedev/restate-server, installed by scripts/setup into
.ci/.tools) started for tests, and ASGI deployments served with hypercorn in a subprocess.

    with RestateServer.start(tmp_path) as restate:
        with serve_asgi("tests.some_module:app", tmp_path) as url:
            restate.register(url)                       # h2c, BIDI_STREAM
            restate.register(url, use_http_11=True)     # HTTP/1.1, REQUEST_RESPONSE
            httpx.post(f"{restate.ingress}/Greeter/greet", json="Ann")
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.processes import Child, free_port, wait_http, wait_tcp

REPO = Path(__file__).resolve().parents[2]


def find_restate_server() -> Path | None:
    env = os.environ.get("PERDURE_RESTATE_SERVER")
    if env:
        return Path(env)
    pattern = str(REPO / ".ci/.tools/node_modules/@restatedev/restate-server-*/bin/restate-server")
    hits = sorted(glob.glob(pattern))
    if hits:
        return Path(hits[0])
    found = shutil.which("restate-server")
    return Path(found) if found else None


def require_restate_server() -> Path:
    """The binary, or skip the test (fail under CI, which must have installed it)."""
    binary = find_restate_server()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must install the official restate-server (scripts/setup)")
        pytest.skip("the official restate-server is not installed (run scripts/setup)")
    return binary


@dataclass
class RestateServer:
    """A running official server: ``ingress`` and ``admin`` base URLs, and admin helpers."""

    child: Child
    ingress: str
    admin: str
    data_dir: Path
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    @classmethod
    @contextmanager
    def start(cls, tmp: Path, *, extra_config: str = "") -> Iterator[RestateServer]:
        """Start on free loopback ports with a fresh data dir under ``tmp``.

        ``extra_config`` is appended to the TOML config (e.g. invoker settings).
        """
        binary = require_restate_server()
        ports = {name: free_port() for name in ("fabric", "admin", "ingress")}
        data = tmp / "restate-data"
        config = tmp / "restate.toml"
        config.write_text(
            "\n".join(
                [
                    'node-name = "perdure-test"',
                    f'base-dir = "{data}"',
                    f'bind-address = "127.0.0.1:{ports["fabric"]}"',
                    f'advertised-address = "http://127.0.0.1:{ports["fabric"]}/"',
                    "default-num-partitions = 2",
                    "disable-telemetry = true",
                    'shutdown-timeout = "5s"',
                    'log-filter = "warn,restate=info"',
                    "log-disable-ansi-codes = true",
                    extra_config,
                    "[admin]",
                    f'bind-address = "127.0.0.1:{ports["admin"]}"',
                    "disable-web-ui = true",
                    "[ingress]",
                    f'bind-address = "127.0.0.1:{ports["ingress"]}"',
                    "",
                ]
            )
        )
        child = Child(
            "restate-server",
            [str(binary), "--config-file", str(config), "--no-logo", "--listen-mode", "tcp"],
            tmp / "restate-server.log",
            cwd=tmp,
        )
        server = cls(
            child,
            ingress=f"http://127.0.0.1:{ports['ingress']}",
            admin=f"http://127.0.0.1:{ports['admin']}",
            data_dir=data,
        )
        try:
            wait_http(server.admin + "/health", "restate-server admin", child)
            wait_http(server.ingress + "/restate/health", "restate-server ingress", child)
            yield server
        finally:
            server.http.close()
            child.stop()

    def register(self, uri: str, *, use_http_11: bool = False, force: bool = True) -> Any:
        """Register a deployment and wait until the ingress knows its services."""
        body = post_deployment(self.http, self.admin, uri, use_http_11=use_http_11, force=force)
        names = {s["name"] for s in body.get("services", [])}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            health = self.http.get(self.ingress + "/restate/health")
            if health.status_code == 200 and names <= set(health.json().get("services", [])):
                return body
            time.sleep(0.05)
        raise TimeoutError(f"services {sorted(names)} never reached the ingress")

    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL against the admin introspection API (e.g. sys_invocation)."""
        resp = self.http.post(
            self.admin + "/query", json={"query": sql}, headers={"accept": "application/json"}
        )
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json().get("rows", [])
        return rows


def post_deployment(
    http: httpx.Client, admin: str, uri: str, *, use_http_11: bool, force: bool
) -> Any:
    """``POST /deployments`` on the admin API (Restate's, which perdure speaks too); its answer,
    or an error saying what the server said."""
    resp = http.post(
        admin + "/deployments", json={"uri": uri, "use_http_11": use_http_11, "force": force}
    )
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"registering {uri}: {resp.status_code} {resp.text}")
    return resp.json()


@contextmanager
def serve_asgi(app: str, tmp: Path, *, cwd: Path | None = None) -> Iterator[str]:
    """Serve ``module:app`` with hypercorn (HTTP/1.1 and h2c on one port); yields its base URL."""
    port = free_port()
    child = Child(
        f"hypercorn {app}",
        [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", app],
        tmp / f"deployment-{port}.log",
        cwd=cwd or REPO,
    )
    try:
        wait_tcp(port, f"deployment {app}", child)
        yield f"http://127.0.0.1:{port}"
    finally:
        child.stop()
