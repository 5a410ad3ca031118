"""Servers the CLI tests share: perdure's server (a real process) with tests/cli/services.py
deployed, and the same on the official server, each started once per test session on demand."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.official import RestateServer, serve_asgi
from tests.support.perdure_server import PerdureServer

SERVICES = "tests.cli.services:app"


@dataclass
class Deployed:
    name: str
    admin: str
    ingress: str
    url: str
    ids: dict[str, str] = field(default_factory=dict)
    """The scenario's invocations by role (running, pending, suspended, ...)."""

    def client(self) -> httpx.Client:
        return httpx.Client(timeout=30.0)

    def query(self, sql: str) -> list[dict[str, Any]]:
        resp = httpx.post(self.admin + "/query", json={"query": sql},
                          headers={"accept": "application/json"}, timeout=30.0)  # fmt: skip
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["rows"]
        return rows

    def send(self, path: str, body: Any = None, query: str = "") -> str:
        resp = httpx.post(f"{self.ingress}/{path}/send{query}", json=body, timeout=30.0)
        assert resp.status_code == 202, resp.text
        invocation_id: str = resp.json()["invocationId"]
        return invocation_id

    def status(self, invocation_id: str) -> str | None:
        rows = self.query(f"SELECT status FROM sys_invocation WHERE id = '{invocation_id}'")
        return rows[0]["status"] if rows else None

    def wait_status(self, invocation_id: str, *wanted: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(invocation_id)
            if status in wanted:
                assert status is not None
                return status
            if time.monotonic() > deadline:
                raise TimeoutError(f"{invocation_id} is {status}, never {wanted}")
            time.sleep(0.1)


def _scenario(d: Deployed) -> None:
    """One invocation in each state the CLI shows."""
    httpx.post(f"{d.ingress}/Greeter/greet", json="Ann", timeout=30.0).raise_for_status()
    httpx.post(f"{d.ingress}/Counter/ann/add", json=5, timeout=30.0).raise_for_status()
    rows = d.query("SELECT id, target FROM sys_invocation WHERE status = 'completed'")
    d.ids["completed"] = next(r["id"] for r in rows if r["target"] == "Greeter/greet")
    d.ids["running"] = d.send("Counter/bob/wait")
    d.wait_status(d.ids["running"], "running")
    d.ids["pending"] = d.send("Counter/bob/add", 1)
    d.ids["scheduled"] = d.send("Greeter/greet", "Later", "?delay=1h")
    d.ids["backing-off"] = d.send("Flaky/fail")
    d.ids["paused"] = d.send("Pauser/fail")
    d.ids["caller"] = d.send("Greeter/relay", "dan")
    for role in ("pending", "scheduled", "backing-off", "paused"):
        d.wait_status(d.ids[role], role)


@pytest.fixture(scope="session")
def perdure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """perdure's server with the CLI test services and the scenario's invocations."""
    tmp = tmp_path_factory.mktemp("cli-perdure")
    with PerdureServer.start(tmp) as server, serve_asgi(SERVICES, tmp) as url:
        server.register(url)
        d = Deployed("perdure", server.admin, server.ingress, url)
        d.ids["suspended"] = d.send("Counter/eve/park")
        _scenario(d)
        d.wait_status(d.ids["suspended"], "suspended")
        yield d


@pytest.fixture(scope="session")
def official(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    """The official server with the same services and scenario."""
    tmp = tmp_path_factory.mktemp("cli-official")
    with RestateServer.start(tmp) as server, serve_asgi(SERVICES, tmp) as url:
        server.register(url)
        d = Deployed("official", server.admin, server.ingress, url)
        _scenario(d)
        yield d


@pytest.fixture(params=["perdure", "official"])
def any_server(request: pytest.FixtureRequest) -> Deployed:
    """Each server in turn: a command shared by both must behave the same on both."""
    deployed: Deployed = request.getfixturevalue(request.param)
    return deployed
