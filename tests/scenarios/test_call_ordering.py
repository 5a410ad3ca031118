"""Calls to one virtual object key run serially, in order of arrival."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, ok, unique

pytestmark = pytest.mark.interop


def test_calls_to_one_key_run_in_order(server: Any) -> None:
    key = unique("order")
    with httpx.Client(timeout=30) as client:
        for i in range(8):
            resp = client.post(f"{server.ingress}/Counter/{key}/append/send", json=i)
            assert resp.status_code == 202
    eventually(lambda: len(ok(server, f"Counter/{key}/items")) == 8, "all appends ran")
    assert ok(server, f"Counter/{key}/items") == list(range(8))
