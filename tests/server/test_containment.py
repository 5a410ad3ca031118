"""One bad value or one failing transition must not stall the engine.

A duration that would overflow the store's 64-bit times is refused (400). And when a
transition of one invocation raises anyway (a bug, a value stored before validation existed),
it is rolled back and that invocation fails instead, visibly (its last failure), retried per
its policy; the other invocations, and the timers, carry on."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import perdure
from perdure import Context
from perdure.server.engine import driver
from perdure.server.engine.core import Core
from perdure.server.invoker.invoker import Invoker
from perdure.testing import Harness
from perdure.testing.views import InvocationInfo

pytestmark = pytest.mark.asyncio

echo = perdure.Service("Echo")


@echo.handler()
async def say(ctx: Context, text: str) -> str:
    return text


@echo.handler()
async def nap(ctx: Context, text: str) -> str:
    await ctx.sleep(timedelta(seconds=5))
    return text


async def until(h: Harness, what: str, check: Callable[[list[InvocationInfo]], Any]) -> Any:
    for _ in range(500):
        found = check(h.invocations())
        if found:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}: {h.invocations()}")


async def test_an_overflowing_retention_is_refused_with_400() -> None:
    async with Harness([echo]) as h:
        before = (await h.admin.get("/services/Echo")).json()["journal_retention"]
        for bad in ("999999999999 days", "9" * 5000, "P99999999999999W"):
            answer = await h.admin.patch("/services/Echo", json={"journal_retention": bad})
            assert answer.status_code == 400, answer.text
            assert "longer than the maximum" in answer.json()["message"]
        assert (await h.admin.get("/services/Echo")).json()["journal_retention"] == before
        assert await h.client.service(say).request("still fine") == "still fine"


async def test_a_poisoned_stored_retention_fails_its_invocation_visibly_until_fixed() -> None:
    async with Harness([echo]) as h:
        # As if stored before durations were validated: every completion of Echo overflows.
        h.runtime.engine.registry.services["Echo"].overrides["journal_retention"] = 10**20
        sent = await h.client.service(say).send("poisoned")
        failing = await until(h, "the failure", lambda rows: [
            r for r in rows if r.id == sent.id and "OverflowError" in (r.last_failure or "")
        ])  # fmt: skip
        assert failing[0].status in ("backing-off", "invoked")
        assert "internal error" in (failing[0].last_failure or "")
        # The engine carries on, and setting a sane value lets the invocation complete.
        answer = await h.admin.patch("/services/Echo", json={"journal_retention": "1 day"})
        assert answer.status_code == 200, answer.text
        assert await sent.attach() == "poisoned"


async def test_a_transition_forced_to_raise_fails_only_its_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Harness([echo]) as h:
        broken: set[str] = set()
        on_end = Core.on_end

        def failing_on_end(core: Core, invocation_id: Any) -> None:
            if str(invocation_id) in broken:
                raise RuntimeError("forced")
            on_end(core, invocation_id)

        monkeypatch.setattr(Core, "on_end", failing_on_end)
        first = await h.client.service(say).send("first")
        broken.add(first.id)
        await until(h, "the contained failure", lambda rows: [
            r for r in rows if r.id == first.id and "RuntimeError: forced" in (r.last_failure or "")
        ])  # fmt: skip
        # Others complete meanwhile; the broken one is retried per policy, not lost.
        assert await h.client.service(say).request("second") == "second"
        broken.clear()
        assert await first.attach() == "first"
        assert h.invocation(first.id).retry_count >= 1


async def test_a_timer_that_raises_is_retried_later_and_the_others_fire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(driver, "TIMER_RETRY_MS", 50)
    async with Harness([echo]) as h:
        broken: set[str] = set()
        fire_timer = Core.fire_timer

        def failing_fire_timer(core: Core, timer: Any) -> None:
            if str(timer.invocation_id) in broken:
                raise RuntimeError("forced timer failure")
            fire_timer(core, timer)

        monkeypatch.setattr(Core, "fire_timer", failing_fire_timer)
        bad = await h.client.service(nap).send("bad")
        good = await h.client.service(nap).send("good")
        broken.add(bad.id)
        assert await good.attach() == "good"
        await until(h, "the timer failure", lambda rows: [
            r for r in rows if r.id == bad.id and "forced timer failure" in (r.last_failure or "")
        ])  # fmt: skip
        broken.clear()
        assert await bad.attach() == "bad"


async def test_an_attempt_that_cannot_be_planned_fails_its_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with Harness([echo]) as h:
        plan = Invoker._plan
        failures = 1

        def failing_plan(invoker: Invoker, invocation_id: Any) -> Any:
            nonlocal failures
            if failures:
                failures -= 1
                raise RuntimeError("forced planning failure")
            return plan(invoker, invocation_id)

        monkeypatch.setattr(Invoker, "_plan", failing_plan)
        assert await h.client.service(say).request("planned") == "planned"
        info = next(i for i in h.invocations() if i.value == "planned")
        assert info.retry_count == 1
        assert "forced planning failure" in (info.last_failure or "")
