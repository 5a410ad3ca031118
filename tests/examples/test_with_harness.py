"""Each example, tested the way a user would test it: in a perdure.testing harness, in-process
(no sockets), on the virtual clock. The reminder's delivery is days away and arrives at once."""

from __future__ import annotations

import importlib.util
import sys
import time
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest

from perdure.client import BadRequestError, InvocationError
from perdure.testing import Harness
from tests.support.official import REPO

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_sockets")]


def _example(name: str) -> ModuleType:
    """An example script, imported under its own module name."""
    spec = importlib.util.spec_from_file_location(
        f"examples_{name}", REPO / "examples" / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and type hints look their module up
    spec.loader.exec_module(module)
    return module


order_workflow = _example("order_workflow")
shopping_cart = _example("shopping_cart")
payment_idempotency = _example("payment_idempotency")
reminder = _example("reminder")
fan_out = _example("fan_out")


def _runs(h: Harness, invocation_id: str) -> list[str]:
    return [e.name for e in h.journal(invocation_id) if e.type == "RUN"]


async def test_order_workflow_ships_or_compensates_in_reverse() -> None:
    ex = order_workflow
    async with Harness(ex.app) as h:
        shipped = await h.client.workflow(ex.run, "o-1").request(ex.Order("book", "ok"))
        assert shipped == "tracking-o-1"
        assert h.state(ex.orders, "o-1") == {"status": "shipped"}
        with pytest.raises(InvocationError) as declined:
            await h.client.workflow(ex.run, "o-2").request(ex.Order("book", "declined"))
        assert (declined.value.code, declined.value.message) == (402, "card declined")
        assert await h.client.object(ex.status, "o-2").request() == "compensated"
        failed = next(i for i in h.invocations() if i.target == "OrderProcess/o-2/run")
        assert failed.failure_code == 402
        assert _runs(h, failed.id) == ["reserve", "charge", "release"]


async def test_shopping_cart_checkout_charges_the_total_and_empties_the_cart() -> None:
    ex = shopping_cart
    async with Harness(ex.app) as h:
        with pytest.raises(BadRequestError, match="the cart is empty"):
            await h.client.object(ex.checkout, "ann").request()
        await h.client.object(ex.add, "ann").request(ex.Line("tea", 4))
        assert await h.client.object(ex.add, "ann").request(ex.Line("cup", 6)) == 2
        assert h.state(ex.cart, "ann") == {
            "lines": [{"sku": "tea", "price": 4}, {"sku": "cup", "price": 6}]
        }
        receipt = await h.client.object(ex.checkout, "ann").request()
        assert receipt == ex.Receipt("ann", 10, ["tea", "cup"])
        assert h.state(ex.cart, "ann") == {}
        payment = next(i for i in h.invocations() if i.target == "CartPayments/pay")
        assert payment.value == "paid 10"


async def test_payment_with_one_idempotency_key_charges_once() -> None:
    ex = payment_idempotency
    async with Harness(ex.app) as h:
        first, retry = await h.client.service(ex.buy).request(ex.Purchase("o-1", 30))
        assert first == retry and first.endswith(": 30")
        assert h.state(ex.ledger, "main") == {"charges": 1}
        charges = [i for i in h.invocations() if i.target == "Ledger/main/charge"]
        assert len(charges) == 1
        assert _runs(h, charges[0].id) == ["bank"]


async def test_reminder_days_away_is_delivered_in_milliseconds() -> None:
    ex = reminder
    started = time.monotonic()
    async with Harness(ex.app) as h:
        five_days = timedelta(days=5).total_seconds()
        scheduled_at = h.clock.now()
        with h.clock.hold():
            invocation_id = await h.client.service(ex.schedule).request(
                ex.Reminder("ann", "tea", five_days)
            )
            await h.settle()
            assert h.invocation(invocation_id).status == "scheduled"
            assert await h.client.object(ex.messages, "ann").request() == []
        await h.settle()
        assert await h.client.object(ex.messages, "ann").request() == ["reminder: tea"]
        assert h.clock.now() - scheduled_at >= timedelta(days=5)
        assert h.invocation(invocation_id).succeeded
    assert time.monotonic() - started < 5.0


async def test_fan_out_updates_every_object_key() -> None:
    ex = fan_out
    async with Harness(ex.app) as h:
        sensors = ["a", "b", "c"]
        first: Any = await h.client.service(ex.send).request(ex.Broadcast(sensors, 7))
        assert first == dict.fromkeys(sensors, 7)
        second = await h.client.service(ex.send).request(ex.Broadcast(sensors[:2], 1))
        assert second == {"a": 8, "b": 8}
        assert {s: h.state(ex.sensor, s)["total"] for s in sensors} == {"a": 8, "b": 8, "c": 7}
