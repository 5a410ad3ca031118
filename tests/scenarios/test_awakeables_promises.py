"""Awakeables resolved from outside and from a handler, rejections; workflow promises."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, ok, unique

pytestmark = pytest.mark.interop


def test_awakeables(server: Any) -> None:
    key = unique("awk")
    result: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: result.update(r=ok(server, "Caller/awakeables", key)))
    worker.start()
    awakeable_id = eventually(lambda: ok(server, f"Saga/{key}/awakeable_of"), "awakeable id")
    assert awakeable_id.startswith("sign_1")
    resp = httpx.post(
        f"{server.ingress}/restate/awakeables/{awakeable_id}/resolve", json=42, timeout=30
    )
    assert resp.status_code == 202
    worker.join(timeout=60)
    assert result["r"] == [42, "from ctx", [422, "no way"]]


def test_workflow_promises(server: Any) -> None:
    key = unique("order")
    sent = httpx.post(
        f"{server.ingress}/OrderWorkflow/{key}/run/send", json={"id": key, "amount": 3}, timeout=30
    )
    assert sent.status_code == 202
    eventually(lambda: ok(server, f"OrderWorkflow/{key}/status") == "waiting", "waiting")
    assert ok(server, f"OrderWorkflow/{key}/peek") is None
    assert ok(server, f"OrderWorkflow/{key}/approve", "approved") == "resolved"
    assert ok(server, f"OrderWorkflow/{key}/approve", "again") == "already completed (409)"
    assert ok(server, f"OrderWorkflow/{key}/peek") == "approved"
    attached = httpx.get(
        f"{server.ingress}/restate/workflow/OrderWorkflow/{key}/attach", timeout=60
    )
    assert attached.json() == {"order_id": key, "total": 3}
    assert ok(server, f"OrderWorkflow/{key}/status") == "approved"
