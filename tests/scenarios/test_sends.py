"""One-way sends, delayed sends (not run before the delay) and idempotency keys on calls and
sends (no second execution)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, ok, unique

pytestmark = pytest.mark.interop


def test_sends_and_delayed_send(server: Any) -> None:
    key = unique("sends")
    started = time.monotonic()
    send_id = ok(server, "Caller/sends", key)
    assert send_id.startswith("inv_1")
    eventually(lambda: ok(server, f"Counter/{key}/get") == 15, "immediate sends ran")
    # The delayed send (2 s) has not run yet, and the caller did not wait for it.
    if time.monotonic() - started < 1.5:
        assert ok(server, f"Counter/{key}/get") == 15
    eventually(lambda: ok(server, f"Counter/{key}/get") == 115, "delayed send ran")
    assert time.monotonic() - started >= 1.9


def test_idempotent_calls_and_sends_execute_once(server: Any) -> None:
    key = unique("idem")
    assert ok(server, "Caller/idempotent", key) == [1, 1]
    eventually(lambda: ok(server, f"Counter/{key}/get") == 1001, "idempotent send ran")
    time.sleep(0.5)
    assert ok(server, f"Counter/{key}/get") == 1001


def test_a_handler_named_send_is_called_not_sent(server: Any) -> None:
    assert ok(server, "Greeter/send", "x") == "sent x"
    sent = httpx.post(f"{server.ingress}/Greeter/send/send", json="y", timeout=30)
    assert sent.status_code == 202 and sent.json()["invocationId"].startswith("inv_1")
