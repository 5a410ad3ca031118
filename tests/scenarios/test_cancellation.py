"""Cancelling an invocation from a handler: the target sees TerminalError(409) at its await,
compensates, and ends with 409."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, ok, unique

pytestmark = pytest.mark.interop


def test_cancel_reaches_the_handler_which_compensates(server: Any) -> None:
    key = unique("saga")
    sent = httpx.post(f"{server.ingress}/Saga/{key}/book/send", timeout=30)
    assert sent.status_code == 202
    target = sent.json()["invocationId"]
    eventually(lambda: ok(server, f"Saga/{key}/saga_status") == "booked", "booked")
    ok(server, "Caller/cancel", target)
    assert eventually(
        lambda: ok(server, f"Saga/{key}/saga_status"), "compensated", timeout=60
    ) and eventually(
        lambda: ok(server, f"Saga/{key}/saga_status") == "compensated after 409",
        "compensated",
        timeout=60,
    )
    attached = httpx.get(f"{server.ingress}/restate/invocation/{target}/attach", timeout=30)
    assert attached.status_code == 409
