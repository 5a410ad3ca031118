"""SIGKILL perdure's server while invocations sleep, sit in an object inbox, wait for a delayed
send, or wait on a workflow promise; restart it on the same data directory; every acknowledged
invocation completes, and each exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server.conftest import deployed
from tests.support.perdure_server import wait_until

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_sigkill_loses_no_acknowledged_work_and_repeats_none(tmp_path: Path, store: str) -> None:
    with deployed(tmp_path, store=store) as d:
        client = d.client
        # The sleeps must outlast the sends and the kill: a step that ran before the SIGKILL may
        # legitimately run again if its result was not journaled yet.
        sent_at = time.monotonic()
        sleeping = [
            client.post("/Sleeper/sleep/send", json=4000).json()["invocationId"] for _ in range(20)
        ]
        items = [f"i{n}" for n in range(8)]
        for item in items:
            assert client.post("/Counter/inbox/append/send", json=item).status_code == 202
        delayed = client.post("/Counter/later/add/send?delay=1500ms", json=10)
        assert delayed.status_code == 202
        assert client.post("/Signup/crash/run/send", json="x@y.z").status_code == 202
        steps = client.post("/Runner/three_steps/send", json="crash").json()["invocationId"]
        time.sleep(0.5)

        d.server.kill()
        assert time.monotonic() - sent_at < 3.5, "too slow to kill before the first sleep ended"
        d.server.restart()

        wait_until(lambda: client.post("/Signup/crash/email").json() == "x@y.z", "workflow state")
        assert client.post("/Signup/crash/click", json="k").json() == "clicked"
        for inv in sleeping:
            assert client.get(f"/restate/invocation/{inv}/attach", timeout=60).json() == "slept"
        assert client.get(f"/restate/invocation/{steps}/attach").json() == [
            "step0",
            "step1",
            "step2",
        ]
        wait_until(lambda: client.post("/Counter/inbox/items").json() == items, "the inbox",
                   timeout=60)  # fmt: skip
        wait_until(lambda: client.post("/Counter/later/get").json() == 10, "the delayed send")
        workflow = client.get("/restate/workflow/Signup/crash/attach")
        assert workflow.json() == "verified x@y.z with k"

        slept = d.effect_lines("slept")
        assert sorted(slept) == sorted(sleeping)  # each sleeper's effect exactly once
        assert d.effect_lines("steps").count("crash:step0") == 1
        time.sleep(0.3)
        assert client.post("/Counter/later/get").json() == 10  # the delayed send ran once
