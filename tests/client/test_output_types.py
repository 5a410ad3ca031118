"""``output=T`` decodes results into dataclasses, Pydantic models, msgspec structs, bytes, or
typed containers of them; without it a result is decoded JSON. A body that does not fit is a
ResponseDecodeError, not a crash inside the caller's code."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx
import msgspec
import pydantic
import pytest

from perdure.client import ResponseDecodeError
from tests.client.conftest import Runner
from tests.client.wire import ID, Recorder, ok


@dataclasses.dataclass
class Line:
    item: str
    count: int = 1


@dataclasses.dataclass
class Order:
    id: str
    lines: list[Line]
    note: str | None = None
    total: float = 0.0


class PydanticOrder(pydantic.BaseModel):
    id: str
    lines: list[dict[str, Any]]


class MsgspecLine(msgspec.Struct):
    item: str
    count: int


ORDER_JSON = {"id": "o1", "lines": [{"item": "tea", "count": 2}, {"item": "jam"}], "total": 3}


@pytest.mark.parametrize(
    ("make", "body", "expected"),
    [
        (
            lambda c: c.service("S", "h", output=Order),
            ORDER_JSON,
            Order("o1", [Line("tea", 2), Line("jam", 1)], None, 3.0),
        ),
        (
            lambda c: c.object("O", "k", "h", output=PydanticOrder),
            {"id": "o1", "lines": []},
            PydanticOrder(id="o1", lines=[]),
        ),
        (
            lambda c: c.workflow("W", "k", "run", output=list[MsgspecLine]),
            [{"item": "tea", "count": 2}],
            [MsgspecLine("tea", 2)],
        ),
        (lambda c: c.service("S", "h", output=dict[str, int]), {"a": 1}, {"a": 1}),
        (lambda c: c.service("S", "h", output=tuple[int, str]), [1, "x"], (1, "x")),
        (lambda c: c.service("S", "h", output=int | None), None, None),
        (lambda c: c.service("S", "h"), ORDER_JSON, ORDER_JSON),
        (lambda c: c.service("S", "h", output=str), "plain", "plain"),
    ],
    ids=["dataclass", "pydantic", "msgspec-list", "dict", "tuple", "optional", "json", "str"],
)
def test_request_output_types(run: Runner, make: Any, body: Any, expected: Any) -> None:
    out = run(Recorder([ok(body)]), lambda c: make(c).request())
    assert out == expected
    assert type(out) is type(expected)


def test_bytes_output_is_the_raw_body(run: Runner) -> None:
    raw = b"\x00\x01 not json"
    out = run(
        Recorder([httpx.Response(200, content=raw)]),
        lambda c: c.service("S", "h", output=bytes).request(),
    )
    assert out == raw


def test_empty_body_is_none(run: Runner) -> None:
    recorder = Recorder([httpx.Response(200, content=b"")])
    assert run(recorder, lambda c: c.service("S", "h", output=Order).request()) is None
    assert run(recorder, lambda c: c.service("S", "h", output=bytes).request()) == b""


@pytest.mark.parametrize(
    "make",
    [
        lambda c: c.invocation_by_id(ID, output=Line),
        lambda c: c.service_invocation_by_idempotency_key("S", "h", "k", output=Line),
        lambda c: c.object_invocation_by_idempotency_key("O", "k", "h", "ik", output=Line),
        lambda c: c.workflow_handle("W", "k", output=Line),
    ],
    ids=["by id", "service idempotency key", "object idempotency key", "workflow"],
)
def test_handle_output_types(run: Runner, make: Any) -> None:
    recorder = Recorder([ok({"item": "tea", "count": 5})])
    assert run(recorder, lambda c: make(c).attach()) == Line("tea", 5)
    assert run(recorder, lambda c: make(c).output()) == Line("tea", 5)


@pytest.mark.parametrize(
    ("output", "body"),
    [
        (Order, {"id": "o1"}),
        (Order, ["not", "an", "object"]),
        (int, "seven"),
        (PydanticOrder, {"id": 1}),
        (MsgspecLine, {"item": "tea"}),
        (list[int], {"a": 1}),
    ],
    ids=["missing field", "wrong shape", "wrong scalar", "pydantic", "msgspec", "list"],
)
def test_mismatched_body_is_a_decode_error(run: Runner, output: Any, body: Any) -> None:
    with pytest.raises(ResponseDecodeError) as caught:
        run(Recorder([ok(body)]), lambda c: c.service("S", "h", output=output).request())
    assert caught.value.code == 200
    assert caught.value.invocation_id == ID


def test_invalid_json_is_a_decode_error(run: Runner) -> None:
    with pytest.raises(ResponseDecodeError):
        run(
            Recorder([httpx.Response(200, content=b"{nope")]),
            lambda c: c.service("S", "h").request(),
        )
