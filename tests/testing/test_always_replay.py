"""always_replay: every await suspends and the next attempt replays the journal, so a handler
that takes different steps on replay fails with a journal mismatch the test can see."""

from __future__ import annotations

import pytest

from perdure.client import InvocationError
from perdure.testing import Harness
from tests.testing import services
from tests.testing.services import add, counter, greet_later, greeter, lookup, lookups

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_sockets")]


@pytest.fixture(autouse=True)
def cold_cache() -> None:
    services.profiles.clear()


async def test_the_non_deterministic_handler_passes_without_replays() -> None:
    async with Harness([lookups]) as h:
        assert await h.client.service(lookup).request("ann") == "PROFILE OF ANN"
        assert h.invocations()[0].retry_count == 0


async def test_always_replay_catches_the_non_deterministic_handler() -> None:
    async with Harness([lookups], always_replay=True) as h:
        with pytest.raises(InvocationError) as failed:
            await h.client.service(lookup).request("ann")
        assert failed.value.code == 570
        assert "journal mismatch" in failed.value.message
        info = h.invocations()[0]
        assert info.retry_count == 3  # the service's policy: 3 attempts, then kill
        assert "journal mismatch" in (info.last_failure or "")
        assert 'name: "fetch"' in (info.last_failure or "")
        assert 'name: "format"' in (info.last_failure or "")


async def test_deterministic_handlers_pass_with_every_await_replayed() -> None:
    async with Harness([greeter, counter], always_replay=True) as h:
        assert await h.client.object(add, "ann").request(2) == 2
        assert await h.client.object(add, "ann").request(3) == 5
        assert await h.client.service(greet_later).request("Bo") == "Hello Bo, five days later"
        sleeper = next(i for i in h.invocations() if i.target == "Greeter/greet_later")
        # suspended on the sleep, resumed by a new attempt that replayed the journal
        types = [e.type for e in h.journal(sleeper.id)]
        assert types == ["INPUT", "SLEEP", "SLEEP_COMPLETION", "OUTPUT"]
        assert sleeper.retry_count == 0
