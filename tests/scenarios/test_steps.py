"""Durable steps with retries, sleeps, deterministic uuid/random and the request info."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import ok, unique

pytestmark = pytest.mark.interop


def test_run_retries_sleep_and_determinism(server: Any) -> None:
    key = unique("steps")
    result = ok(server, "Caller/steps", key, headers={"x-test": "hello"})
    assert result == [
        3,
        "500: ValueError: broken for good",
        2,
        3,
        True,
        "inv_1",
        "hello",
    ]
