"""The harness's lifecycle, client calls to services/objects/workflows, and the accessors tests
use to assert (state, journal, invocation), all without a socket."""

from __future__ import annotations

from pathlib import Path

import pytest

import perdure
from perdure.client import InvocationError
from perdure.testing import Harness, HarnessError, JournalEntry
from tests.testing.services import (
    add,
    confirm,
    counter,
    greet,
    greeter,
    refuse,
    run,
    signup,
    stamp,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.usefixtures("no_sockets")]


async def test_a_harness_starts_serves_and_removes_its_temporary_store() -> None:
    harness = Harness([greeter])
    with pytest.raises(HarnessError, match="not started"):
        _ = harness.client
    async with harness as h:
        store_path = h.runtime.db_path
        assert store_path.exists()
        assert await h.client.service(greet).request("Ann") == "Hello Ann"
        deployments = (await h.admin.get("/deployments")).json()["deployments"]
        assert [d["uri"] for d in deployments] == ["local://harness/"]
    assert not store_path.exists()
    with pytest.raises(HarnessError, match="not started"):
        h.state("Counter", "ann")


async def test_a_harness_on_a_data_dir_resumes_what_is_stored(tmp_path: Path) -> None:
    async with Harness([counter], data_dir=tmp_path) as h:
        assert await h.client.object(add, "ann").request(2) == 2
    async with Harness([counter], data_dir=tmp_path) as h:
        assert await h.client.object(add, "ann").request(3) == 5
        assert len(h.invocations()) == 2


async def test_an_app_or_definitions_are_accepted_and_bad_input_is_refused() -> None:
    async with Harness(perdure.app([greeter, counter])) as h:
        assert await h.client.object(add, "bo").request(1) == 1
    with pytest.raises(ValueError, match="at least one service"):
        Harness([])
    with pytest.raises(ValueError, match="two services are named 'Greeter'"):
        Harness([greeter, greeter])


async def test_calls_reach_services_objects_and_workflows() -> None:
    async with Harness([greeter, counter, signup]) as h:
        assert await h.client.service(greet).request("Ann") == "Hello Ann"
        with pytest.raises(InvocationError) as refused:
            await h.client.service(refuse).request("Bo")
        assert (refused.value.code, refused.value.message) == (403, "no greeting for Bo")
        assert await h.client.object(add, "ann").request(2) == 2
        assert await h.client.object(add, "ann").request(3) == 5
        assert await h.client.object(add, "bo").request(1) == 1
        handle = await h.client.workflow_send(run, "w1").send("ann@example.com")
        await h.settle()
        assert not h.invocation(handle).completed  # waits for the promise
        assert h.state(signup, "w1") == {"stage": "waiting for confirmation"}
        await h.client.workflow(confirm, "w1").request("1234")
        assert await handle.attach() == "ann@example.com confirmed with 1234"
        assert h.state("Signup", "w1") == {"stage": "confirmed"}


async def test_state_is_read_decoded_or_raw() -> None:
    async with Harness([counter]) as h:
        await h.client.object(add, "ann").request(4)
        await h.client.object(stamp, "ann").request()
        assert h.state_raw(counter, "ann") == {"total": b"4", "raw": b"\x00\xff"}
        with pytest.raises(HarnessError, match="'raw' of Counter/ann is not JSON"):
            h.state(counter, "ann")
        assert h.state(counter, "nobody") == {}


async def test_journal_entries_read_as_records() -> None:
    async with Harness([counter]) as h:
        handle = await h.client.object_send(add, "ann").send(4)
        await h.settle()
        journal = h.journal(handle)
    assert [(e.index, e.type, e.kind) for e in journal] == [
        (0, "INPUT", "command"),
        (1, "GET_EAGER_STATE", "command"),
        (2, "SET_STATE", "command"),
        (3, "OUTPUT", "command"),
    ]
    assert journal[0].fields["value"] == 4
    assert journal[2].fields == {"key": "total", "value": 4}
    assert journal[3] == JournalEntry(3, "OUTPUT", "command", "", {"value": 4})


async def test_invocation_status_and_result_and_failure() -> None:
    async with Harness([greeter]) as h:
        ok = await h.client.service_send(greet).send("Ann")
        failed = await h.client.service_send(refuse).send("Bo")
        await h.settle()
        info = h.invocation(ok.id)
        assert (info.status, info.succeeded, info.value) == ("completed", True, "Hello Ann")
        assert info.target == "Greeter/greet"
        bad = h.invocation(failed)
        assert (bad.status, bad.succeeded, bad.value) == ("completed", False, None)
        assert (bad.failure_code, bad.failure_message) == (403, "no greeting for Bo")
        assert {i.id for i in h.invocations()} == {ok.id, failed.id}
        with pytest.raises(HarnessError, match="bad invocation id 'nope'"):
            h.invocation("nope")
        with pytest.raises(HarnessError, match="no invocation inv_1"):
            h.journal("inv_1cC1QYB3Y2ve3YgWXMaEtsmQGKCx2n7bZr")
