"""A request-response cycle between two exclusive handlers deadlocks: CycleA/k calls CycleB/k,
which calls CycleA/k, and that call waits in CycleA/k's inbox behind its own caller's caller.
Nothing moves until an operator cancels one member; cancellation then flows through the calls.
perdure's server also names the cycle (a log line and the ``deadlock`` field of its invocation
listing); the official server says nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.scenarios.support import TIMEOUT, eventually, ok, unique

pytestmark = pytest.mark.interop


def _output_status(server: Any, invocation_id: str) -> int:
    url = f"{server.ingress}/restate/invocation/{invocation_id}/output"
    return httpx.get(url, timeout=TIMEOUT).status_code


def test_a_call_cycle_deadlocks_until_one_member_is_cancelled(server: Any) -> None:
    key = unique("cycle")
    sent = httpx.post(f"{server.ingress}/CycleA/{key}/enter/send", json=1, timeout=TIMEOUT)
    assert sent.status_code == 202, sent.text
    outer = sent.json()["invocationId"]
    relay = eventually(lambda: ok(server, f"CycleA/{key}/callee"), "CycleA called CycleB")
    time.sleep(1.5)  # long enough for any progress to show; there is none
    assert _output_status(server, outer) == 470
    assert _output_status(server, relay) == 470

    if server.mode.startswith("perdure"):
        _check_perdure_reports_the_cycle(server, key, outer, relay)

    cancel = httpx.patch(f"{server.admin}/invocations/{outer}/cancel", timeout=TIMEOUT)
    assert cancel.status_code == 202, cancel.text
    for invocation_id in (outer, relay):
        attached = httpx.get(
            f"{server.ingress}/restate/invocation/{invocation_id}/attach", timeout=TIMEOUT
        )
        assert attached.status_code == 409, attached.text
    if server.mode.startswith("perdure"):
        stuck = [r for r in server.invocations() if key in r["target"] and r["deadlock"]]
        assert stuck == []


def _check_perdure_reports_the_cycle(server: Any, key: str, outer: str, relay: str) -> None:
    rows = [r for r in server.invocations() if key in r["target"]]
    members = [r for r in rows if r["deadlock"] is not None]
    assert len(members) == 3, rows
    inner = next(r["id"] for r in members if r["id"] not in (outer, relay))
    for row in members:
        assert set(row["deadlock"]["cycle"]) == {outer, relay, inner}
    (outer_row,) = (r for r in members if r["id"] == outer)
    description = outer_row["deadlock"]["description"]
    assert description == (
        f"deadlock: CycleA/{key}/enter ({outer}) waits for CycleB/{key}/relay ({relay}), "
        f"which waits for CycleA/{key}/enter ({inner}), "
        f"which is queued behind CycleA/{key}/enter ({outer})"
    )
    log = server.log_tail()
    assert "deadlock: " in log and f"is queued behind CycleA/{key}/enter ({outer})" in log
