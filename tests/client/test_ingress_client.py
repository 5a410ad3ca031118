"""Every operation of the ingress client against a real server running services written with the
official Python SDK (tests/client/official_services.py), with Client and with AsyncClient.

These are the scenarios users rely on: request-response and sends to services, objects and
workflows; idempotency keys (same result, one execution); delayed sends; attach/output by id, by
idempotency key and by workflow key, before and after completion; awakeables; each error class
from a real answer."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from perdure.client import (
    BadRequestError,
    ClientError,
    ConflictError,
    InvocationError,
    NotFoundError,
    NotReadyError,
    TransportError,
)
from perdure.protocol.ids import InvocationId
from perdure.protocol.manifest import ServiceType
from perdure.sdk.refs import HandlerRef, register
from tests.client.conftest import Deployment
from tests.client.scenario import Mode, run_scenario
from tests.support.processes import free_port

pytestmark = pytest.mark.interop


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclasses.dataclass
class Line:
    item: str
    count: int


@dataclasses.dataclass
class Order:
    id: str
    lines: list[Line]
    total: int


async def greet_ref(ctx: Any, name: str) -> str:
    """Stands in for a perdure SDK handler definition of the official Greeter.greet."""
    raise NotImplementedError


async def add_ref(ctx: Any, n: int) -> int:
    raise NotImplementedError


register(greet_ref, HandlerRef("Greeter", "greet", ServiceType.SERVICE, str, str))
register(add_ref, HandlerRef("Counter", "add", ServiceType.VIRTUAL_OBJECT, int, int))


# -- request-response --------------------------------------------------------------------------


def test_request_response(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        assert await m(c.service("Greeter", "greet").request("Ann")) == "Hello Ann"
        key = fresh("mary")
        assert await m(c.object("Counter", key, "add").request(2)) == 2
        assert await m(c.object("Counter", key, "add").request(3)) == 5
        assert await m(c.object("Counter", key, "get").request()) == 5
        # keys with characters that need percent-encoding reach the handler intact
        odd = fresh("a b/c?d%e")
        assert await m(c.object("Counter", odd, "add").request(7)) == 7
        assert await m(c.object("Counter", odd, "get").request()) == 7
        # typed output, typed input
        order = {"id": "o1", "lines": [{"item": "tea", "count": 2}, {"item": "jam", "count": 1}]}
        out = await m(c.service("Greeter", "order", output=Order).request(order))
        assert out == Order("o1", [Line("tea", 2), Line("jam", 1)], 3)
        # bytes in, bytes out
        assert await m(c.service("Greeter", "reverse", output=bytes).request(b"abc")) == b"cba"
        # custom headers reach the handler, from the client and from the call
        seen = await m(c.service("Greeter", "headers").request(headers={"X-Call": "1"}))
        assert seen["x-call"] == "1" and seen["x-client"] == "c"
        # typed handler references
        assert await m(c.service(greet_ref).request("Bo")) == "Hello Bo"
        assert await m(c.object(add_ref, key).request(1)) == 6

    run_scenario(mode, deployed.ingress, scenario, headers={"x-client": "c"})


def test_http2(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        assert await m(m.client.service("Greeter", "greet").request("h2")) == "Hello h2"
        handle = await m(m.client.service_send("Greeter", "greet").send("h2", idempotency_key="x"))
        assert await m(handle.attach()) == "Hello h2"

    run_scenario(mode, deployed.ingress, scenario, http2=True)


# -- idempotency -------------------------------------------------------------------------------


def test_same_idempotency_key_same_result_one_execution(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        key, ikey = fresh("obj"), fresh("ik")
        first = await m(c.object("Counter", key, "add").request(1, idempotency_key=ikey))
        again = await m(c.object("Counter", key, "add").request(1, idempotency_key=ikey))
        assert first == again == 1
        assert await m(c.object("Counter", key, "get").request()) == 1  # executed once
        sent = await m(c.object_send("Counter", key, "add").send(1, idempotency_key=ikey))
        assert sent.status == "PreviouslyAccepted"
        assert await m(sent.attach()) == 1
        assert await m(c.object("Counter", key, "get").request()) == 1
        by_key = c.object_invocation_by_idempotency_key("Counter", key, "add", ikey)
        assert await m(by_key.attach()) == 1
        assert await m(by_key.output()) == 1

        # a service: a nonce made in ctx.run differs per execution
        ikey = fresh("stamp")
        a = await m(c.service("Greeter", "stamp").request("x", idempotency_key=ikey))
        b = await m(c.service("Greeter", "stamp").request("y", idempotency_key=ikey))
        assert a == b == {"name": "x", "nonce": a["nonce"]}
        other = await m(c.service("Greeter", "stamp").request("x"))
        assert other["nonce"] != a["nonce"]
        svc = c.service_invocation_by_idempotency_key("Greeter", "stamp", ikey)
        assert await m(svc.attach()) == a
        assert await m(svc.output()) == a
        first_send = await m(c.service_send("Greeter", "stamp").send("z", idempotency_key=ikey))
        assert first_send.status == "PreviouslyAccepted"
        assert await m(first_send.output()) == a

        # keys with characters that a path cannot carry as they are
        key, ikey = fresh("k/1 %"), fresh("50% off/now?")
        first = await m(c.object("Counter", key, "add").request(4, idempotency_key=ikey))
        by_key = c.object_invocation_by_idempotency_key("Counter", key, "add", ikey)
        assert await m(by_key.attach()) == await m(by_key.output()) == first == 4
        ikey = fresh("a:b@c")  # path-safe: goes in the path as it is
        first = await m(c.service("Greeter", "stamp").request("q", idempotency_key=ikey))
        svc = c.service_invocation_by_idempotency_key("Greeter", "stamp", ikey)
        assert await m(svc.output()) == first
        svc = c.service_invocation_by_idempotency_key("Greeter", "stamp", fresh("a/b"))
        with pytest.raises(NotFoundError):
            await m(svc.output())

    run_scenario(mode, deployed.ingress, scenario)


def test_send_accepted_then_previously_accepted(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        ikey = fresh("send")
        first = await m(
            c.service_send("Greeter", "greet").send(
                "Ann", delay=timedelta(milliseconds=300), idempotency_key=ikey, headers={"x-a": "1"}
            )
        )
        second = await m(c.service_send("Greeter", "greet").send("Ann", idempotency_key=ikey))
        assert first.status == "Accepted" and second.status == "PreviouslyAccepted"
        assert first.id == second.id and first.id.startswith("inv_1")
        assert first.execution_time is not None
        assert second.execution_time == first.execution_time  # the original time is echoed
        undelayed = await m(c.service_send("Greeter", "greet").send("Bo"))
        assert undelayed.execution_time is None and undelayed.id != first.id
        assert await m(c.invocation_by_id(first.id).attach()) == "Hello Ann"
        assert await m(c.invocation_by_id(first.id, output=str).output()) == "Hello Ann"

    run_scenario(mode, deployed.ingress, scenario)


# -- delayed sends -----------------------------------------------------------------------------


def test_delayed_send_waits_for_its_delay(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        key = fresh("later")
        before = datetime.now(UTC)
        handle = await m(
            c.object_send("Counter", key, "add").send(
                1, delay=timedelta(seconds=2), idempotency_key="d"
            )
        )
        sent_at = time.monotonic()
        assert handle.status == "Accepted"
        assert handle.execution_time is not None and handle.execution_time.tzinfo is not None
        expected = before + timedelta(seconds=2)
        assert abs((handle.execution_time - expected).total_seconds()) < 1.5
        assert await m(c.object("Counter", key, "get").request()) == 0
        with pytest.raises(NotReadyError):
            await m(handle.output())
        await m.sleep(1.0)
        if time.monotonic() - sent_at < 1.8:  # still inside the delay on a slow machine
            assert await m(c.object("Counter", key, "get").request()) == 0
        assert await m(handle.attach()) == 1
        assert time.monotonic() - sent_at >= 1.9
        assert datetime.now(UTC) >= handle.execution_time - timedelta(milliseconds=100)
        assert await m(c.object("Counter", key, "get").request()) == 1

    run_scenario(mode, deployed.ingress, scenario)


# -- attach and output -------------------------------------------------------------------------


def test_attach_while_running_and_after_completion(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        key, ikey = fresh("latch"), fresh("ik")
        handle = await m(c.object_send("Latch", key, "wait").send("L", idempotency_key=ikey))
        by_id = c.invocation_by_id(handle.id)
        by_key = c.object_invocation_by_idempotency_key("Latch", key, "wait", ikey)
        awakeable = await m.until(lambda: c.object("Latch", key, "awakeable").request(), bool)
        with pytest.raises(NotReadyError) as not_ready:
            await m(by_id.output())
        assert not_ready.value.code == 470 and not_ready.value.source == "ingress"
        with pytest.raises(NotReadyError):
            await m(by_key.output())
        waiting = [m.start(by_id.attach), m.start(by_key.attach), m.start(handle.attach)]
        await m.sleep(0.5)
        assert not any(p.done() for p in waiting)
        await m(c.resolve_awakeable(awakeable, "go"))
        for pending in waiting:
            assert await pending.result() == "L: go"
        assert await m(by_id.attach()) == "L: go"
        assert await m(by_id.output()) == "L: go"
        assert await m(by_key.output()) == "L: go"

    run_scenario(mode, deployed.ingress, scenario)


def test_reject_awakeable(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        key = fresh("reject")
        handle = await m(c.object_send("Latch", key, "wait").send("R"))
        awakeable = await m.until(lambda: c.object("Latch", key, "awakeable").request(), bool)
        assert awakeable.startswith("sign_1")
        await m(c.reject_awakeable(awakeable, "not today"))
        with pytest.raises(InvocationError) as failed:
            await m(handle.attach())
        assert "not today" in failed.value.message
        assert failed.value.source == "invocation"

    run_scenario(mode, deployed.ingress, scenario)


# -- workflows ---------------------------------------------------------------------------------


def test_workflow_lifecycle(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        key = fresh("wf a/b?")  # percent-encoded in every path
        handle = await m(c.workflow_send("Signup", key, "run").send("Ann"))
        assert handle.status == "Accepted"
        wf = c.workflow_handle("Signup", key, output=str)
        with pytest.raises(NotReadyError):
            await m(wf.output())
        await m.until(lambda: c.object("Signup", key, "status").request(), lambda s: s == "waiting")
        again = await m(c.workflow_send("Signup", key, "run").send("Ann"))
        assert again.status == "PreviouslyAccepted" and again.id == handle.id
        with pytest.raises(ConflictError) as conflict:
            await m(c.workflow("Signup", key, "run").request("Ann"))
        assert conflict.value.code == 409
        attached = m.start(wf.attach)
        await m.sleep(0.3)
        assert not attached.done()
        assert await m(c.object("Signup", key, "approve").request("boss")) == "ok"
        assert await attached.result() == "Ann approved by boss"
        assert await m(wf.output()) == "Ann approved by boss"
        assert await m(handle.attach()) == "Ann approved by boss"
        assert await m(c.object("Signup", key, "status").request()) == "approved"

        # the request-response form of run, on a fresh key, approved from the side
        key2 = fresh("wf")
        running = m.start(lambda: c.workflow("Signup", key2, "run").request("Bo"))
        await m.until(
            lambda: c.object("Signup", key2, "status").request(), lambda s: s == "waiting"
        )
        await m(c.object("Signup", key2, "approve").request("ops"))
        assert await running.result() == "Bo approved by ops"

    run_scenario(mode, deployed.ingress, scenario)


# -- errors ------------------------------------------------------------------------------------


def test_each_error_class_from_a_real_answer(deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        with pytest.raises(NotFoundError) as e404:
            await m(c.service("NoSuchService", "x").request(1))
        assert e404.value.source == "ingress" and "NoSuchService" in e404.value.message
        with pytest.raises(NotFoundError):
            await m(c.service("Greeter", "no_such_handler").request(1))
        with pytest.raises(NotFoundError):
            await m(c.invocation_by_id(str(InvocationId.new())).output())
        with pytest.raises(NotFoundError):
            await m(c.workflow_handle("Signup", fresh("never")).output())
        with pytest.raises(BadRequestError) as e400:
            await m(c.resolve_awakeable("sign_1notanid", 1))
        assert e400.value.code == 400 and e400.value.source == "ingress"
        with pytest.raises(BadRequestError):
            await m(c.workflow("Signup", fresh("wf"), "run").request("x", idempotency_key="k"))
        with pytest.raises(InvocationError) as e500:
            await m(c.service("Greeter", "fail").request(500))
        err = e500.value
        assert type(err) is InvocationError
        assert (err.code, err.source, err.metadata) == (500, "invocation", {"reason": "asked"})
        assert err.message == "failed with 500"
        assert err.invocation_id is not None and err.invocation_id.startswith("inv_1")
        with pytest.raises(InvocationError) as e422:
            await m(c.service("Greeter", "fail").request(422))
        assert e422.value.code == 422
        # a handler's own 404 and 409 keep their class; source tells them apart
        with pytest.raises(NotFoundError) as own404:
            await m(c.service("Greeter", "fail").request(404))
        assert own404.value.source == "invocation"
        with pytest.raises(ConflictError):
            await m(c.service("Greeter", "fail").request(409))
        # NotReadyError and ConflictError from the ingress: test_workflow_lifecycle

    run_scenario(mode, deployed.ingress, scenario)


def test_transport_error_when_nothing_listens(mode: str) -> None:
    async def scenario(m: Mode) -> None:
        with pytest.raises(TransportError) as caught:
            await m(m.client.service("Greeter", "greet").request("x"))
        assert isinstance(caught.value, ClientError) and caught.value.code is None
        started = time.monotonic()
        with pytest.raises(TransportError):
            await m(m.client.invocation_by_id(str(InvocationId.new())).attach())
        assert time.monotonic() - started >= 0.3  # retried: 0.1 + 0.2 s of backoff

    run_scenario(mode, f"http://127.0.0.1:{free_port()}", scenario, retries=2)
