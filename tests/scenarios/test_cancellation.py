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


def test_cancel_through_a_send_handle(server: Any) -> None:
    key = unique("handle")
    target = ok(server, "Caller/send_then_cancel", key)
    assert target.startswith("inv_1")
    eventually(
        lambda: ok(server, f"Saga/{key}/saga_status") == "compensated after 409",
        "the sent invocation compensated",
        timeout=60,
    )
    attached = httpx.get(f"{server.ingress}/restate/invocation/{target}/attach", timeout=30)
    assert attached.status_code == 409


def test_cancelling_a_parent_cancels_its_in_flight_child(server: Any) -> None:
    key = unique("parent")
    sent = httpx.post(f"{server.ingress}/SagaParent/{key}/wait_for_booking/send", timeout=30)
    assert sent.status_code == 202
    parent = sent.json()["invocationId"]
    eventually(lambda: ok(server, f"Saga/{key}/saga_status") == "booked", "child booked")
    child = eventually(lambda: ok(server, f"SagaParent/{key}/parent_state", "child"), "child id")
    ok(server, "Caller/cancel", parent)
    eventually(
        lambda: ok(server, f"Saga/{key}/saga_status") == "compensated after 409",
        "the child compensated",
        timeout=60,
    )
    eventually(
        lambda: ok(server, f"SagaParent/{key}/parent_state", "status") == "parent saw 409",
        "the parent compensated",
        timeout=60,
    )
    for invocation in (parent, child):
        attached = httpx.get(f"{server.ingress}/restate/invocation/{invocation}/attach", timeout=30)
        assert attached.status_code == 409, f"{invocation}: {attached.text}"
