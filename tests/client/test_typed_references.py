"""Typed handler references on real servers: the caller imports the perdure-SDK service
definitions (tests/client/perdure_services.py) and calls them through their handler functions,
``client.service(greet).request("Ann")``, with arguments encoded and results decoded by the
handlers' own type hints. Every form that takes names also takes a handler function."""

from __future__ import annotations

import uuid
from typing import Any, assert_type

import pytest

from perdure.client import (
    AsyncClient,
    Client,
    InvocationError,
    InvocationHandle,
    NotFoundError,
    NotReadyError,
    Requester,
)
from tests.client.conftest import Deployment
from tests.client.perdure_services import (
    Order,
    Point,
    Receipt,
    add,
    approve,
    checkout,
    current,
    flip,
    greet,
    refuse,
    reverse,
    run,
    stamp,
)
from tests.client.scenario import Mode, run_scenario

pytestmark = pytest.mark.interop


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_request_response_through_handler_functions(
    perdure_deployed: Deployment, mode: str
) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        assert await m(c.service(greet).request("Ann")) == "Hello Ann"
        receipt = await m(c.service(checkout).request(Order(id="o-1", amount=21)))
        assert receipt == Receipt(order_id="o-1", total=42)
        assert isinstance(receipt, Receipt)
        assert await m(c.service(flip).request(Point(x=1, y=2))) == Point(x=2, y=1)
        assert await m(c.service(reverse).request(b"\x00abc")) == b"cba\x00"
        key = fresh("mary")
        assert await m(c.object(add, key).request(2)) == 2
        assert await m(c.object(add, key).request(3)) == 5
        assert await m(c.object(current, key).request()) == 5
        with pytest.raises(InvocationError) as failed:
            await m(c.service(refuse).request("no"))
        assert (failed.value.code, failed.value.message) == (422, "no")
        assert failed.value.metadata == {"field": "reason"}

    run_scenario(mode, perdure_deployed.ingress, scenario)


def test_sends_and_handles_through_handler_functions(
    perdure_deployed: Deployment, mode: str
) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        handle = await m(c.service_send(checkout).send(Order(id="o-2", amount=1)))
        assert handle.status == "Accepted"
        assert await m(handle.attach()) == Receipt(order_id="o-2", total=2)
        key = fresh("k")
        sent = await m(c.object_send(add, key).send(7))
        assert await m(sent.attach()) == 7

        # idempotency keys: the typed forms find the invocation the key made
        ikey = fresh("ik")
        first = await m(c.service(stamp).request("ann", idempotency_key=ikey))
        assert isinstance(first, Order) and first.id.startswith("ann:")
        assert await m(c.service(stamp).request("bob", idempotency_key=ikey)) == first
        by_key = c.service_invocation_by_idempotency_key(stamp, ikey)
        assert await m(by_key.output()) == first
        assert await m(by_key.attach()) == first
        by_kw = c.service_invocation_by_idempotency_key(stamp, idempotency_key=ikey)
        assert await m(by_kw.output()) == first
        weird = fresh("50% off/now?")  # goes through POST /restate/output
        assert await m(c.object(add, key).request(1, idempotency_key=weird)) == 8
        by_obj = c.object_invocation_by_idempotency_key(add, key, weird)
        assert await m(by_obj.output()) == 8
        assert await m(c.object_invocation_by_idempotency_key(add, key, idempotency_key=weird)
                       .attach()) == 8  # fmt: skip

    run_scenario(mode, perdure_deployed.ingress, scenario)


def test_workflow_through_handler_functions(perdure_deployed: Deployment, mode: str) -> None:
    async def scenario(m: Mode) -> None:
        c = m.client
        wf = fresh("wf one")
        sent = await m(c.workflow_send(run, wf).send("ann"))
        assert sent.status == "Accepted"
        handle = c.workflow_handle(run, wf)
        with pytest.raises(NotReadyError):
            await m(handle.output())
        waiting = m.start(handle.attach)
        assert await m(c.object(approve, wf).request("cy")) is True  # a shared handler
        expected = Receipt(order_id="ann/cy", total=2)
        assert await waiting.result() == expected
        assert await m(handle.output()) == expected
        again = await m(c.workflow_send(run, wf).send("bo"))
        assert again.status == "PreviouslyAccepted" and again.id == sent.id
        other = fresh("wf two")
        done = m.start(lambda: c.workflow(run, other).request("dee"))
        await running(m, c.workflow_handle(run, other))
        await m(c.object(approve, other).request("ed"))
        assert await done.result() == Receipt(order_id="dee/ed", total=2)

    run_scenario(mode, perdure_deployed.ingress, scenario)


async def running(m: Mode, handle: Any) -> None:
    """Wait until the handle's invocation exists but has not finished (output says 470)."""
    for _ in range(600):
        try:
            await m(handle.output())
        except NotReadyError:
            return
        except NotFoundError:
            await m.sleep(0.05)
    raise AssertionError("the invocation never started")


def test_typed_forms_check_the_kind_of_handler() -> None:
    with Client("http://127.0.0.1:9") as c:
        with pytest.raises(TypeError, match=r"client\.object"):
            c.service_invocation_by_idempotency_key(add, "k")
        with pytest.raises(TypeError, match=r"client\.service"):
            c.object_invocation_by_idempotency_key(greet, "key", "k")
        with pytest.raises(TypeError, match="run handler"):
            c.workflow_handle(approve, "wf")
        with pytest.raises(TypeError, match=r"client\.service"):
            c.workflow_handle(greet, "wf")
        with pytest.raises(TypeError, match="names its handler"):
            c.service_invocation_by_idempotency_key(stamp, "x", "y")  # type: ignore[call-overload]
        with pytest.raises(TypeError, match="idempotency key"):
            c.service_invocation_by_idempotency_key(stamp)  # type: ignore[call-overload]


async def check_inferred_types(c: Client, a: AsyncClient) -> None:
    """Not run: mypy checks that references infer argument and result types."""
    assert_type(c.service(checkout), Requester[Order, Receipt])
    assert_type(c.object(add, "k").request(1), int)
    assert_type(c.workflow_handle(run, "w"), InvocationHandle[Receipt])
    assert_type(c.workflow_handle("W", "w", output=Receipt).output(), Receipt)
    assert_type(c.service_invocation_by_idempotency_key(stamp, "k").attach(), Order)
    assert_type(c.object_invocation_by_idempotency_key(add, "k", "ik"), InvocationHandle[int])
    assert_type(c.invocation_by_id("inv_1", output=Point).output(), Point)
    assert_type(await a.service_invocation_by_idempotency_key(flip, "k").output(), Point)
    assert_type(await a.workflow_handle(run, "w").attach(), Receipt)
