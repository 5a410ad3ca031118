"""Request-response calls from a handler: services, objects and workflows, by name and by
reference; typed arguments and results; raw bytes; terminal errors crossing calls."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import call, ok, unique

pytestmark = pytest.mark.interop


def test_calls_by_name_and_by_reference(server: Any) -> None:
    key = unique("calls")
    result = ok(server, "Caller/calls", key)
    assert result == [
        "Hello Ann",
        "Hello Bob",
        1,
        3,
        3,
        42,
        2,
        "inv_1",
        [2, 1],
        "cba",
        None,
    ]


def test_workflow_calls_by_reference_and_attach(server: Any) -> None:
    key = unique("wf")
    assert ok(server, "Caller/workflow_by_ref", key) == [
        "resolved",
        "already completed (409)",
        9,
        key,
    ]
    assert ok(server, f"OrderWorkflow/{key}/status") == "yes"


def test_terminal_error_codes_cross_calls(server: Any) -> None:
    assert ok(server, "Caller/errors", 418) == [418, "failed with 418", {"why": "asked"}]
    direct = call(server, "Greeter/fail", 422)
    assert direct.status_code == 422
    assert direct.json() == {
        "code": 422,
        "message": "failed with 422",
        "metadata": {"why": "asked"},
        "source": "invocation",
    }


def test_typed_payloads_from_the_ingress(server: Any) -> None:
    assert ok(server, "Greeter/checkout", {"id": "o1", "amount": 4}) == {
        "order_id": "o1",
        "total": 8,
    }
    assert ok(server, "Greeter/flip", {"x": 3, "y": 4}) == {"x": 4, "y": 3}
    bad = call(server, "Greeter/checkout", {"id": "o1"})
    assert bad.status_code == 400
    raw = call(
        server,
        "Greeter/raw",
        content=b"\x00\x01xyz",
        headers={"content-type": "application/octet-stream"},
    )
    assert raw.status_code == 200, raw.text
    assert raw.content == b"zyx\x01\x00"
    assert raw.headers["content-type"] == "application/octet-stream"
