"""A deployment registered with ``use_http_11``: request/response attempts over HTTP/1.1, where
every await the journal cannot satisfy ends the attempt (suspension) and a new one replays."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.server.conftest import deployed
from tests.support.perdure_server import wait_until

pytestmark = pytest.mark.interop


def test_request_response_deployment_runs_state_sleep_run_and_calls(tmp_path: Path) -> None:
    with deployed(tmp_path, use_http_11=True) as d:
        deployments = d.admin.get("/deployments").json()["deployments"]
        assert deployments[0]["http_version"] == "HTTP/1.1"
        assert deployments[0]["protocol_type"] == "RequestResponse"
        assert d.client.post("/Greeter/greet", json="Ann").json() == "Hello Ann"
        assert d.client.post("/Counter/k/add", json=2).json() == 2
        assert d.client.post("/Counter/k/add", json=2).json() == 4
        assert d.client.post("/Sleeper/sleep", json=100).json() == "slept"
        assert d.client.post("/Runner/three_steps", json="h1").json() == ["step0", "step1", "step2"]
        assert d.effect_lines("steps") == ["h1:step0", "h1:step1", "h1:step2"]
        assert d.client.post("/Caller/call_greeter", json="Bo").json() == "Hello Bo!"


def test_sigterm_stops_gracefully_and_the_work_continues_after_restart(tmp_path: Path) -> None:
    with deployed(tmp_path) as d:
        inv = d.client.post("/Sleeper/sleep/send", json=1500).json()["invocationId"]
        wait_until(
            lambda: any(i["id"] == inv and i["journal_size"] >= 2 for i in d.server.invocations()),
            "the sleep to be journaled",
        )
        d.server.child.proc.send_signal(signal.SIGTERM)
        assert d.server.child.proc.wait(timeout=30) == 0
        assert "stopped" in d.server.child.log_tail()
        d.server.restart()
        assert d.client.get(f"/restate/invocation/{inv}/attach").json() == "slept"
        assert d.effect_lines("slept") == [inv]
