"""perdure's server keeps working when a connection to a deployment goes bad: a silently dead
connection is found out (PING) and dropped, attempts go to a fresh connection; a deployment that
ends its connections with GOAWAY after a number of requests costs no failed attempt; and a
deployment stops promptly on SIGTERM even with a stuck connection.

The deployment is ``tests.server.liveness_services`` served by ``perdure.serve`` in a subprocess,
reached through a TCP proxy that can black-hole its open connections."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.perdure_server import PerdureServer
from tests.support.processes import Child, free_port, wait_tcp
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.interop
REPO = Path(__file__).resolve().parents[2]


@contextmanager
def deployment(tmp: Path, *extra: str) -> Iterator[tuple[Child, int]]:
    port = free_port()
    child = Child(
        "liveness deployment",
        [sys.executable, "-m", "tests.server.liveness_services", str(port), *extra],
        tmp / f"deployment-{port}.log",
        cwd=REPO,
    )
    try:
        wait_tcp(port, "liveness deployment", child)
        yield child, port
    finally:
        child.stop()


@contextmanager
def behind_proxy(tmp: Path) -> Iterator[tuple[PerdureServer, TcpProxy, Child, httpx.Client]]:
    with (
        PerdureServer.start(tmp) as server,
        deployment(tmp) as (child, port),
        tcp_proxy(port) as proxy,
        httpx.Client(base_url=server.ingress, timeout=60.0) as client,
    ):
        server.register(f"http://127.0.0.1:{proxy.port}")
        yield server, proxy, child, client


def test_a_black_holed_connection_is_dropped_and_calls_go_to_a_new_one(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (server, proxy, _, client):
        assert client.post("/LiveEcho/echo_text", json="before").json() == "before"
        opened = proxy.connections
        proxy.black_hole()
        started = time.monotonic()
        for n in range(5):
            answer = client.post("/LiveEcho/echo_text", json=f"after {n}", timeout=45.0)
            assert answer.json() == f"after {n}", server.log_tail()
        elapsed = time.monotonic() - started
        assert elapsed < 30, f"calls took {elapsed:.1f} s after the black hole"
        assert proxy.connections > opened  # a fresh connection carried them


def test_goaway_after_a_request_count_costs_no_failed_attempt(tmp_path: Path) -> None:
    with (
        PerdureServer.start(tmp_path) as server,
        deployment(tmp_path, "50") as (_, port),
        tcp_proxy(port) as proxy,
        httpx.Client(base_url=server.ingress, timeout=60.0) as client,
    ):
        server.register(f"http://127.0.0.1:{proxy.port}")

        def call(n: int) -> str:
            answer = client.post("/LiveEcho/echo_text", json=f"n{n}")
            assert answer.status_code == 200, answer.text
            text: str = answer.json()
            return text

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(call, range(500)))
        assert answers == [f"n{n}" for n in range(500)]
        assert proxy.connections >= 500 // 50  # the deployment did end its connections
        log = server.child.log_path.read_text()
        assert "failed" not in log, server.log_tail()


def test_sigterm_with_a_stuck_connection_stops_the_deployment_promptly(tmp_path: Path) -> None:
    with behind_proxy(tmp_path) as (_, proxy, child, client):
        # An invocation waits (on its open stream) for a durable sleep's completion.
        sent = client.post("/LiveEcho/nap_then_sleep/send", json=0)
        assert sent.status_code == 202
        time.sleep(1.0)
        proxy.black_hole()
        started = time.monotonic()
        os.killpg(child.proc.pid, signal.SIGTERM)
        code = child.proc.wait(timeout=40)
        elapsed = time.monotonic() - started
        log = child.log_path.read_text()
        assert elapsed < 10, f"the deployment took {elapsed:.1f} s to stop"
        assert code == 0, log
        assert "CancelledError" not in log and "Traceback" not in log, log


def test_sigterm_cuts_a_busy_handler_after_the_grace_period_without_a_traceback(
    tmp_path: Path,
) -> None:
    with (
        PerdureServer.start(tmp_path) as server,
        deployment(tmp_path, "-", "1") as (child, port),
        httpx.Client(base_url=server.ingress, timeout=60.0) as client,
    ):
        server.register(f"http://127.0.0.1:{port}")
        assert client.post("/LiveEcho/nap/send", json=60).status_code == 202
        time.sleep(1.0)  # the handler is busy in its own code (no await on the server)
        started = time.monotonic()
        os.killpg(child.proc.pid, signal.SIGTERM)
        code = child.proc.wait(timeout=40)
        elapsed = time.monotonic() - started
        log = child.log_path.read_text()
        assert elapsed < 10, f"the deployment took {elapsed:.1f} s to stop (grace: 1 s)"
        assert code == 0, log
        assert "Traceback" not in log, log
