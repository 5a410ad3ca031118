"""perdure.sdk.deadlines: many deadlines of one length on one asyncio timer."""

from __future__ import annotations

import asyncio

import pytest

from perdure.sdk.deadlines import Deadlines

pytestmark = pytest.mark.asyncio


async def test_deadlines_fire_in_order_unless_discarded_or_renewed() -> None:
    deadlines = Deadlines(0.05)
    loop = asyncio.get_running_loop()
    fired: list[str] = []
    for key in "abc":
        deadlines.add(key, lambda k=key: fired.append(k), loop)  # type: ignore[misc]
    deadlines.discard("b")
    await asyncio.sleep(0.03)
    deadlines.add("a", lambda: fired.append("a again"), loop)  # renewed: 0.05 s from now
    await asyncio.sleep(0.2)
    assert fired == ["c", "a again"]
    assert len(deadlines) == 0


async def test_a_deadline_fires_at_most_one_period_late() -> None:
    deadlines = Deadlines(0.1, period=0.02)
    loop = asyncio.get_running_loop()
    started, fired = loop.time(), loop.create_future()
    deadlines.add("x", lambda: fired.set_result(loop.time() - started), loop)
    waited = await asyncio.wait_for(fired, 5)
    assert 0.1 <= waited < 0.1 + 0.02 + 0.5  # generous: a busy CI machine is late too
