"""Typed handler references: ``client.service(greet)`` addresses the handler a perdure SDK
decorator registered, and decodes its result with the handler's return type."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from perdure.protocol.manifest import ServiceType
from perdure.sdk.refs import NO_INPUT, HandlerRef, register
from tests.client.conftest import Runner
from tests.client.wire import Recorder, ok, sent


@dataclasses.dataclass
class Greeting:
    text: str


async def greet(ctx: Any, name: str) -> Greeting:
    raise NotImplementedError


async def add(ctx: Any, n: int) -> int:
    raise NotImplementedError


async def run_workflow(ctx: Any) -> str:
    raise NotImplementedError


async def not_registered(ctx: Any, x: int) -> int:
    raise NotImplementedError


register(greet, HandlerRef("Greeter", "greet", ServiceType.SERVICE, str, Greeting))
register(add, HandlerRef("Counter", "add", ServiceType.VIRTUAL_OBJECT, int, int))
register(run_workflow, HandlerRef("Signup", "run", ServiceType.WORKFLOW, NO_INPUT, str))


def test_service_reference(run: Runner) -> None:
    recorder = Recorder([ok({"text": "Hello Ann"})])
    assert run(recorder, lambda c: c.service(greet).request("Ann")) == Greeting("Hello Ann")
    assert recorder.last.url.path == "/Greeter/greet"
    assert recorder.last.content == b'"Ann"'


def test_object_and_workflow_references(run: Runner) -> None:
    recorder = Recorder([ok(3)])
    assert run(recorder, lambda c: c.object(add, "mary").request(1)) == 3
    assert recorder.last.url.path == "/Counter/mary/add"
    recorder = Recorder([ok("done")])
    assert run(recorder, lambda c: c.workflow(run_workflow, "wf 1").request()) == "done"
    assert recorder.last.url.raw_path == b"/Signup/wf%201/run"


def test_send_references(run: Runner) -> None:
    recorder = Recorder([sent()])
    run(recorder, lambda c: c.service_send(greet).send("Ann"))
    assert recorder.last.url.path == "/Greeter/greet/send"
    run(recorder, lambda c: c.object_send(add, "k").send(1))
    assert recorder.last.url.path == "/Counter/k/add/send"
    run(recorder, lambda c: c.workflow_send(run_workflow, "w").send())
    assert recorder.last.url.path == "/Signup/w/run/send"


def test_output_overrides_the_reference(run: Runner) -> None:
    recorder = Recorder([ok({"text": "x"})])
    assert run(recorder, lambda c: c.service(greet, output=bytes).request("A")) == b'{"text": "x"}'


def test_wrong_kind_or_unregistered_is_a_type_error(run: Runner) -> None:
    recorder = Recorder([ok(1)])
    with pytest.raises(TypeError, match=r"client\.object"):
        run(recorder, lambda c: c.service(add).request(1))
    with pytest.raises(TypeError, match=r"client\.service"):
        run(recorder, lambda c: c.object(greet, "k").request(1))
    with pytest.raises(TypeError, match="not a registered perdure handler"):
        run(recorder, lambda c: c.service(not_registered).request(1))
    with pytest.raises(TypeError, match="names its handler"):
        run(recorder, lambda c: c.object(add, "k", "add").request(1))
    assert recorder.requests == []


def test_workflow_shared_handler_reference_via_object(run: Runner) -> None:
    async def interact(ctx: Any, msg: str) -> str:
        raise NotImplementedError

    register(interact, HandlerRef("Signup", "interact", ServiceType.WORKFLOW, str, str))
    recorder = Recorder([ok("ok")])
    assert run(recorder, lambda c: c.object(interact, "w").request("hi")) == "ok"
    assert recorder.last.url.path == "/Signup/w/interact"


def test_handles_by_reference_address_the_same_invocations_as_names(run: Runner) -> None:
    recorder = Recorder([ok({"text": "hi"}), ok({"text": "hi"}), ok(3), ok(3), ok("done")])
    out = run(recorder, lambda c: c.service_invocation_by_idempotency_key(greet, "abc").output())
    assert out == Greeting("hi")  # the reference's result type
    assert recorder.last.method == "GET"
    assert recorder.last.url.path == "/restate/invocation/Greeter/greet/abc/output"
    run(recorder, lambda c: c.service_invocation_by_idempotency_key(greet, idempotency_key="a b")
        .attach())  # fmt: skip
    assert recorder.last.method == "POST" and recorder.last.url.path == "/restate/attach"
    assert json.loads(recorder.last.content) == {
        "target": "idempotentInvocation", "service": "Greeter", "handler": "greet",
        "idempotencyKey": "a b",
    }  # fmt: skip
    assert run(recorder, lambda c: c.object_invocation_by_idempotency_key(add, "k/1", "x")
               .output()) == 3  # fmt: skip
    assert recorder.last.url.raw_path == b"/restate/invocation/Counter/k%2F1/add/x/output"
    run(recorder, lambda c: c.object_invocation_by_idempotency_key(add, "k", idempotency_key="x")
        .output())  # fmt: skip
    assert recorder.last.url.raw_path == b"/restate/invocation/Counter/k/add/x/output"
    assert run(recorder, lambda c: c.workflow_handle(run_workflow, "wf 1").attach()) == "done"
    assert recorder.last.url.raw_path == b"/restate/workflow/Signup/wf%201/attach"
