"""Virtual object state: get/set/clear/clear-all/keys, the object key, shared reads."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import ok, unique

pytestmark = pytest.mark.interop


def test_state_operations(server: Any) -> None:
    key = unique("state")
    assert ok(server, f"Counter/{key}/state_ops") == {
        "key": key,
        "before": ["a", "b", "c"],
        "order": ["o1", 5],
        "after_clear": ["b", "c"],
        "missing": None,
        "after_all": [],
    }
    assert ok(server, f"Counter/{key}/add", 5) == 5
    assert ok(server, f"Counter/{key}/add", 6) == 11
    assert ok(server, f"Counter/{key}/get") == 11
