"""What the client puts on the wire: paths (keys percent-encoded), ?delay=<N>ms, headers, bodies.
Each test runs with Client and with AsyncClient against an in-process transport."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pydantic
import pytest

from tests.client.conftest import Runner
from tests.client.wire import ID, Recorder, ok, sent


@dataclasses.dataclass
class Order:
    item: str
    count: int


class PydanticOrder(pydantic.BaseModel):
    item: str
    count: int


class MsgspecOrder(msgspec.Struct):
    item: str
    count: int


PATHS: list[tuple[str, Any, str, str]] = [
    ("service call", lambda c: c.service("S", "h").request(), "POST", "/S/h"),
    ("object call", lambda c: c.object("O", "Mary", "h").request(), "POST", "/O/Mary/h"),
    (
        "object key encoded",
        lambda c: c.object("O", "a b/c?%é", "h").request(),
        "POST",
        "/O/a%20b%2Fc%3F%25%C3%A9/h",
    ),
    ("workflow call", lambda c: c.workflow("W", "wf-1", "run").request(), "POST", "/W/wf-1/run"),
    (
        "workflow shared handler",
        lambda c: c.object("W", "wf-1", "interact").request(),
        "POST",
        "/W/wf-1/interact",
    ),
    ("service send", lambda c: c.service_send("S", "h").send(), "POST", "/S/h/send"),
    ("requester send", lambda c: c.service("S", "h").send(), "POST", "/S/h/send"),
    ("object send", lambda c: c.object_send("O", "k/1", "h").send(), "POST", "/O/k%2F1/h/send"),
    ("workflow send", lambda c: c.workflow_send("W", "id", "run").send(), "POST", "/W/id/run/send"),
    (
        "attach by id",
        lambda c: c.invocation_by_id(ID).attach(),
        "GET",
        f"/restate/invocation/{ID}/attach",
    ),
    (
        "output by id",
        lambda c: c.invocation_by_id(ID).output(),
        "GET",
        f"/restate/invocation/{ID}/output",
    ),
    (
        "service attach by idempotency key",
        lambda c: c.service_invocation_by_idempotency_key("S", "h", "order-1:a@b").attach(),
        "GET",
        "/restate/invocation/S/h/order-1:a@b/attach",
    ),
    (
        "object output by idempotency key",
        lambda c: c.object_invocation_by_idempotency_key("O", "k 1", "h", "ik").output(),
        "GET",
        "/restate/invocation/O/k%201/h/ik/output",
    ),
    (
        "workflow attach",
        lambda c: c.workflow_handle("W", "id/1").attach(),
        "GET",
        "/restate/workflow/W/id%2F1/attach",
    ),
    (
        "workflow output",
        lambda c: c.workflow_handle("W", "id").output(),
        "GET",
        "/restate/workflow/W/id/output",
    ),
]


@pytest.mark.parametrize(
    ("op", "method", "path"), [p[1:] for p in PATHS], ids=[p[0] for p in PATHS]
)
def test_paths(run: Runner, op: Any, method: str, path: str) -> None:
    recorder = Recorder([lambda r: sent() if r.url.path.endswith("/send") else ok("x")])
    run(recorder, op)
    assert recorder.last.method == method
    assert recorder.last.url.raw_path.decode() == path
    assert recorder.last.url.host == "ingress.test"


@pytest.mark.parametrize(
    ("op", "path", "body"),
    [
        (
            lambda c: c.service_invocation_by_idempotency_key("S", "h", "a/b").attach(),
            "/restate/attach",
            {
                "target": "idempotentInvocation",
                "service": "S",
                "handler": "h",
                "idempotencyKey": "a/b",
            },
        ),
        (
            lambda c: c.object_invocation_by_idempotency_key("O", "k/1", "h", "50% off?").output(),
            "/restate/output",
            {
                "target": "idempotentInvocation",
                "service": "O",
                "key": "k/1",
                "handler": "h",
                "idempotencyKey": "50% off?",
            },
        ),
    ],
    ids=["service", "object"],
)
def test_idempotency_keys_a_path_cannot_carry_go_in_a_body(
    run: Runner, op: Any, path: str, body: dict[str, str]
) -> None:
    # Restate does not percent-decode idempotency keys in /restate/invocation/... paths.
    recorder = Recorder([ok("x")])
    assert run(recorder, op) == "x"
    assert recorder.last.method == "POST"
    assert recorder.last.url.path == path
    assert json.loads(recorder.last.content) == body
    assert recorder.last.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("delay", "query"),
    [
        (timedelta(days=5), "delay=432000000ms"),
        (timedelta(milliseconds=250), "delay=250ms"),
        (1.5, "delay=1500ms"),
        (0, "delay=0ms"),
        (None, ""),
    ],
)
def test_delay_is_sent_in_milliseconds(run: Runner, delay: Any, query: str) -> None:
    recorder = Recorder([sent()])
    run(recorder, lambda c: c.service_send("S", "h").send("x", delay=delay))
    assert recorder.last.url.query.decode() == query


def test_negative_delay_is_refused_before_sending(run: Runner) -> None:
    recorder = Recorder([sent()])
    with pytest.raises(ValueError, match="delay"):
        run(recorder, lambda c: c.service_send("S", "h").send("x", delay=-1))
    assert recorder.requests == []


def test_headers_idempotency_key_and_overrides(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    run(
        recorder,
        lambda c: c.service("S", "h").request(
            1, idempotency_key="abc", headers={"X-Custom": "yes", "Authorization": "Bearer b"}
        ),
        headers={"authorization": "Bearer a", "x-client": "c"},
    )
    headers = recorder.last.headers
    assert headers["idempotency-key"] == "abc"
    assert headers["x-custom"] == "yes"
    assert headers["x-client"] == "c"
    assert headers["authorization"] == "Bearer b"  # the call's headers win over the client's
    assert headers.get_list("authorization") == ["Bearer b"]


def test_headers_on_attach_and_send(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    run(recorder, lambda c: c.invocation_by_id(ID).attach(headers={"x-a": "1"}))
    assert recorder.last.headers["x-a"] == "1"
    recorder = Recorder([sent()])
    run(
        recorder,
        lambda c: c.object_send("O", "k", "h").send(2, idempotency_key="k2", headers={"x-b": "2"}),
    )
    assert recorder.last.headers["x-b"] == "2"
    assert recorder.last.headers["idempotency-key"] == "k2"


def test_no_idempotency_key_header_unless_given(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    run(recorder, lambda c: c.service("S", "h").request(1))
    assert "idempotency-key" not in recorder.last.headers


@pytest.mark.parametrize(
    ("value", "body", "content_type"),
    [
        ("Alice", b'"Alice"', "application/json"),
        (None, b"null", "application/json"),
        ({"a": [1, 2]}, b'{"a":[1,2]}', "application/json"),
        (b"\x00raw", b"\x00raw", "application/octet-stream"),
        (Order("tea", 2), b'{"item":"tea","count":2}', "application/json"),
        (PydanticOrder(item="tea", count=2), b'{"item":"tea","count":2}', "application/json"),
        (MsgspecOrder("tea", 2), b'{"item":"tea","count":2}', "application/json"),
        ([Order("tea", 2)], b'[{"item":"tea","count":2}]', "application/json"),
    ],
    ids=["str", "none", "dict", "bytes", "dataclass", "pydantic", "msgspec", "nested"],
)
def test_bodies(run: Runner, value: Any, body: bytes, content_type: str) -> None:
    recorder = Recorder([ok(1)])
    run(recorder, lambda c: c.service("S", "h").request(value))
    assert recorder.last.content == body
    assert recorder.last.headers["content-type"] == content_type


@pytest.mark.parametrize(
    "op",
    [
        lambda c: c.service("S", "h").request(),
        lambda c: c.service_send("S", "h").send(),
        lambda c: c.object("O", "k", "h").request(),
    ],
    ids=["request", "send", "object"],
)
def test_no_argument_sends_no_body(run: Runner, op: Any) -> None:
    recorder = Recorder([lambda r: sent() if r.url.path.endswith("/send") else ok(1)])
    run(recorder, op)
    assert recorder.last.content == b""
    assert "content-type" not in recorder.last.headers


def test_content_type_can_be_overridden(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    run(
        recorder,
        lambda c: c.service("S", "h").request(
            b'"raw json"', headers={"Content-Type": "application/json"}
        ),
    )
    assert recorder.last.headers.get_list("content-type") == ["application/json"]
    assert recorder.last.content == b'"raw json"'


def test_unencodable_input_is_a_type_error(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    with pytest.raises(TypeError, match="JSON"):
        run(recorder, lambda c: c.service("S", "h").request(object()))
    assert recorder.requests == []


def test_awakeables(run: Runner) -> None:
    recorder = Recorder([httpx.Response(202)])
    assert run(recorder, lambda c: c.resolve_awakeable("sign_1abc", {"ok": True})) is None
    assert recorder.last.method == "POST"
    assert recorder.last.url.path == "/restate/awakeables/sign_1abc/resolve"
    assert json.loads(recorder.last.content) == {"ok": True}
    assert recorder.last.headers["content-type"] == "application/json"

    run(recorder, lambda c: c.resolve_awakeable("sign_1abc", b"raw"))
    assert recorder.last.content == b"raw"
    assert recorder.last.headers["content-type"] == "application/octet-stream"

    run(recorder, lambda c: c.reject_awakeable("sign_1abc", "no thanks"))
    assert recorder.last.url.path == "/restate/awakeables/sign_1abc/reject"
    assert recorder.last.content == b"no thanks"
    assert recorder.last.headers["content-type"] == "text/plain"


def test_send_handle(run: Runner) -> None:
    recorder = Recorder([sent("PreviouslyAccepted", "2026-03-01T10:00:00.123456789Z")])
    handle = run(recorder, lambda c: c.service_send("S", "h").send("x", delay=60))
    assert handle.id == ID
    assert handle.status == "PreviouslyAccepted"
    assert handle.execution_time == datetime(2026, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    recorder = Recorder([sent()])
    handle = run(recorder, lambda c: c.service_send("S", "h").send("x"))
    assert handle.status == "Accepted"
    assert handle.execution_time is None


def test_send_handle_attaches_by_its_id(run: Runner) -> None:
    recorder = Recorder([sent(), ok({"item": "tea", "count": 3})])

    if run.mode == "sync":

        def op(c: Any) -> Any:
            return c.object_send("O", "k", "h", output=Order).send(1).attach()
    else:

        async def op(c: Any) -> Any:
            handle = await c.object_send("O", "k", "h", output=Order).send(1)
            return await handle.attach()

    assert run(recorder, op) == Order("tea", 3)
    assert recorder.last.method == "GET"
    assert recorder.last.url.path == f"/restate/invocation/{ID}/attach"


@pytest.mark.parametrize(
    "bad",
    [
        {"invocationId": ID},
        {"invocationId": ID, "status": "Maybe"},
        {"status": "Accepted"},
        "not json",
    ],
)
def test_malformed_send_answer(run: Runner, bad: Any) -> None:
    from perdure.client import ResponseDecodeError

    response = (
        httpx.Response(202, text=bad) if isinstance(bad, str) else httpx.Response(202, json=bad)
    )
    with pytest.raises(ResponseDecodeError):
        run(Recorder([response]), lambda c: c.service_send("S", "h").send())


@pytest.mark.parametrize(
    ("name", "key", "handler"),
    [("", "k", "h"), ("a/b", "k", "h"), ("O", "k", ""), ("O", "k", "x/y")],
)
def test_invalid_names_are_refused(run: Runner, name: str, key: str, handler: str) -> None:
    recorder = Recorder([ok(1)])
    with pytest.raises(ValueError, match="name"):
        run(recorder, lambda c: c.object(name, key, handler).request())
    assert recorder.requests == []


def test_empty_ids_and_keys_are_refused(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    with pytest.raises(ValueError, match="invocation id"):
        run(recorder, lambda c: c.invocation_by_id("").attach())
    with pytest.raises(ValueError, match="idempotency key"):
        run(recorder, lambda c: c.service("S", "h").request(1, idempotency_key=""))
    with pytest.raises(ValueError, match="printable ASCII"):
        run(recorder, lambda c: c.service("S", "h").request(1, idempotency_key="clé"))
    with pytest.raises(ValueError, match="printable ASCII"):
        run(recorder, lambda c: c.service_invocation_by_idempotency_key("S", "h", "a\nb").output())
    with pytest.raises(TypeError, match="key must be a str"):
        run(recorder, lambda c: c.object("O", 5, "h").request())
    assert recorder.requests == []


def test_close_and_context_managers() -> None:
    import asyncio

    recorder = Recorder([ok(1)])
    client = recorder.client()
    assert client.service("S", "h").request() == 1
    client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.service("S", "h").request()
    with recorder.client() as entered:
        assert entered.service("S", "h").request() == 1
    with pytest.raises(RuntimeError, match="closed"):
        entered.service("S", "h").request()

    async def main() -> None:
        recorder = Recorder([lambda _: ok(1)])  # a fresh response per request
        client = recorder.async_client()
        assert await client.service("S", "h").request() == 1
        await client.aclose()
        with pytest.raises(RuntimeError, match="closed"):
            await client.service("S", "h").request()
        async with recorder.async_client() as entered:
            assert await entered.object("O", "k", "h").request() == 1

    asyncio.run(main())
