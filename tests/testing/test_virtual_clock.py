"""The virtual clock: engine, invoker and SDK read it; it jumps over timers when nothing runs
(a 5-day sleep, a 5-day delayed send, a retry backoff), moves by hand, and can be held."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from perdure.server.engine.effects import TimerSet
from perdure.testing import Harness, HarnessError, WallClock
from tests.testing import services
from tests.testing.services import (
    add,
    add_later,
    approvals,
    ask,
    counter,
    flaky,
    greet_later,
    greeter,
    twice_broken,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_sockets")]
START = datetime(2030, 1, 1, tzinfo=UTC)
FAST = 5.0
"""Real seconds a virtual-time test may take at most (generous: 2 shared cores)."""


async def test_a_five_day_sleep_completes_at_once() -> None:
    started = time.monotonic()
    async with Harness([greeter], start=START) as h:
        assert h.clock.now() == START
        answer = await h.client.service(greet_later).request("Ann")
        assert answer == "Hello Ann, five days later"
        assert h.clock.now() == START + timedelta(days=5)
        sleep = next(e for e in h.journal(h.invocations()[0].id) if e.type == "SLEEP")
        assert sleep.name == "nap"
        assert sleep.fields["wake_up_time"] == int((START + timedelta(days=5)).timestamp() * 1000)
    assert time.monotonic() - started < FAST


async def test_a_five_day_delayed_send_runs_at_once_when_settled() -> None:
    started = time.monotonic()
    async with Harness([counter], start=START) as h:
        await h.client.object(add_later, "ann").request(3)
        await h.settle()
        assert h.state(counter, "ann")["total"] == 3
        assert h.clock.now() == START + timedelta(days=5)
        sent_at = h.clock.now()
        scheduled_by_ingress = await h.client.object_send(add, "ann").send(
            4, delay=timedelta(days=2)
        )
        # (the clock may have jumped already: nothing else was running)
        assert scheduled_by_ingress.execution_time == sent_at + timedelta(days=2)
        await h.settle()
        assert h.state(counter, "ann")["total"] == 7
        assert h.clock.now() == START + timedelta(days=7)
    assert time.monotonic() - started < FAST


async def test_retry_backoff_is_jumped_over() -> None:
    services.flaky_attempts = itertools.count(1)
    async with Harness([flaky], start=START) as h:
        assert await h.client.service(twice_broken).request() == 3
        info = h.invocations()[0]
        assert info.retry_count == 2
        assert "attempt 2 broke" in (info.last_failure or "")
        # retried 1 h after the first failure, then 2 h after the second
        assert h.clock.now() == START + timedelta(hours=3)


async def test_held_clock_moves_only_by_hand() -> None:
    async with Harness([counter], start=START) as h:
        with h.clock.hold():
            assert h.clock.held
            await h.client.object(add_later, "ann").request(3)
            await h.settle()
            assert h.state(counter, "ann") == {}
            assert h.clock.now() == START
            h.clock.advance(timedelta(days=4, hours=23))
            await h.settle()
            assert h.state(counter, "ann") == {}
            h.clock.advance(timedelta(hours=1))
            await h.settle()
            assert h.state(counter, "ann")["total"] == 3
        assert not h.clock.held
        h.clock.auto_advance = False
        await h.client.object(add_later, "ann").request(1)
        await h.settle()
        assert h.state(counter, "ann")["total"] == 3
        h.clock.auto_advance = True
        await h.settle()
        assert h.state(counter, "ann")["total"] == 4


async def test_an_awakeable_timeout_fires_when_quiet_unless_the_clock_is_held() -> None:
    async with Harness([approvals], start=START) as h:
        # Nothing else is going on: the one-hour timeout is due at once.
        assert await h.client.object(ask, "a").request() == "timed out"
        assert h.clock.now() == START + timedelta(hours=1)

        # Held: the test reads the awakeable id and resolves it before the timeout.
        with h.clock.hold():
            handle = await h.client.object_send(ask, "b").send()
            await h.settle()
            awakeable_id = h.state(approvals, "b")["awakeable"]
            await h.client.resolve_awakeable(awakeable_id, "yes")
            assert await handle.attach() == "decided: yes"
        assert h.clock.now() == START + timedelta(hours=1)


async def test_settle_reports_what_keeps_it_busy() -> None:
    async with Harness([greeter], start=START) as h:
        h.clock.auto_advance = False
        handle = await h.client.service_send(greet_later).send("Ann")
        await h.settle()  # held: a pending timer does not keep it busy
        assert not h.invocation(handle).completed
        h.clock.advance(timedelta(days=5))
        await h.settle()
        assert h.invocation(handle).value == "Hello Ann, five days later"
        pending = h.runtime.engine._pending  # an effect not released yet: uncommitted work
        pending.append(TimerSet(0))
        with pytest.raises(HarnessError, match=r"did not settle in 0\.2 s: the engine has"):
            await h.settle(timeout=0.2)
        pending.clear()


async def test_a_real_time_harness_sleeps_for_real() -> None:
    async with Harness([counter], virtual_clock=False) as h:
        assert isinstance(h.clock, WallClock)
        started = time.monotonic()
        await h.client.object_send(add, "ann").send(2, delay=timedelta(milliseconds=300))
        await h.settle()
        assert h.state(counter, "ann")["total"] == 2
        assert time.monotonic() - started >= 0.29
