"""Attaching to invocations by id and by idempotency key, and peeking at their output."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import ok, unique

pytestmark = pytest.mark.interop


def test_attach_by_id_and_idempotency_key_and_peek(server: Any) -> None:
    key = unique("attach")
    assert ok(server, "Caller/attach", key) == [None, key, key, key, 7, 7]


def test_peeking_at_a_terminally_failed_target_raises_its_error(server: Any) -> None:
    assert ok(server, "Caller/output_of_failed", 422) == [422, "failed with 422"]
