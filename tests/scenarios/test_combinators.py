"""Combinators over durable futures: gather/all, any, first_completed, as_completed."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import ok, unique

pytestmark = pytest.mark.interop


def test_combinators(server: Any) -> None:
    assert ok(server, "Caller/combinators", unique("comb")) == [
        ["a", None, "b"],
        "fast",
        "Hello any",
        419,
        ["Hello x", None, None],
    ]
