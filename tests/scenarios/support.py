"""Helpers for scenario tests: calling the ingress and polling with a bound."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

TIMEOUT = 60.0


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def call(server: Any, path: str, body: Any = None, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.ingress}/{path}", json=body, timeout=TIMEOUT, **kwargs)


def ok(server: Any, path: str, body: Any = None, **kwargs: Any) -> Any:
    resp = call(server, path, body, **kwargs)
    assert resp.status_code == 200, f"{path}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content else None


def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll until ``check()`` returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: still {last!r} after {timeout}s")
