"""The lease gate: effects for deployments pass while the leases are sure by the node's clock,
wait (in order) while they are not, and go out when a renewal confirms them."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from perdure.protocol import InvocationId
from perdure.server.cluster.gate import MARGIN, LeaseClock, LeaseGate
from perdure.server.invoker.attempt import Attempt, AttemptPlan
from perdure.server.invoker.h2 import H2Connection, H2Pool
from perdure.server.invoker.local import LocalApps


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def start(self, start: Any) -> None:
        self.calls.append(("start", start))

    def forward(self, invocation_id: Any, frame: Any) -> None:
        self.calls.append(("forward", frame))

    def abort(self, invocation_id: Any) -> None:
        self.calls.append(("abort", invocation_id))


def test_effects_wait_while_the_leases_are_not_sure_and_go_out_in_order() -> None:
    clock = LeaseClock(ttl=5.0)
    runner = Recorder()
    gate = LeaseGate(runner, clock)  # type: ignore[arg-type]
    clock.renewed(time.monotonic())
    gate.forward("inv", "ack-1")
    assert runner.calls == [("forward", "ack-1")]
    clock.sure_until = time.monotonic() - 0.01  # no renewal for TTL - margin: not sure
    gate.forward("inv", "ack-2")
    gate.start("attempt")
    gate.abort("inv")  # stopping an attempt is always safe
    assert runner.calls == [("forward", "ack-1"), ("abort", "inv")]
    assert gate.holding == 2
    gate.confirmed()  # a confirmation that came too late changes nothing
    assert gate.holding == 2
    clock.renewed(time.monotonic())
    gate.forward("inv", "ack-3")  # behind the held ones, never before them
    assert gate.holding == 3
    gate.confirmed()
    assert runner.calls[2:] == [("forward", "ack-2"), ("start", "attempt"), ("forward", "ack-3")]
    assert gate.holding == 0


def test_a_renewal_makes_the_leases_sure_for_the_ttl_minus_the_margin() -> None:
    clock = LeaseClock(ttl=5.0)
    assert not clock.sure()
    began = time.monotonic() - 1.0
    clock.renewed(began)
    assert clock.sure_until == began + 5.0 - MARGIN
    clock.renewed(began - 10)  # an older renewal reported late does not shorten it
    assert clock.sure_until == began + 5.0 - MARGIN


@pytest.mark.asyncio
async def test_bytes_produced_while_sure_wait_if_the_leases_lapse_before_they_are_written() -> None:
    """A node paused after an effect passed the gate but before the invoker wrote it must not
    write it on waking: the HTTP/2 connection asks the gate again at the moment of writing."""
    received = bytearray()
    got = asyncio.Event()

    async def deployment(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # an empty SETTINGS frame
        while chunk := await reader.read(65536):
            received.extend(chunk)
            got.set()
        writer.close()

    server = await asyncio.start_server(deployment, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = LeaseClock(ttl=5.0)
    clock.renewed(time.monotonic())
    gate = LeaseGate(Recorder(), clock)  # type: ignore[arg-type]
    connection = await H2Connection.open("127.0.0.1", port, gate)
    try:
        await asyncio.wait_for(got.wait(), 5)  # the preface and SETTINGS went out: sure
        await asyncio.sleep(0.05)
        before = len(received)
        connection.request("POST", f"127.0.0.1:{port}", "/invoke/S/h", [("x-test", "1")])
        clock.sure_until = time.monotonic() - 0.01  # the "pause": the leases lapsed meanwhile
        await asyncio.sleep(0.2)
        assert len(received) == before, "a write left while the leases were not sure"
        assert gate.holding >= 1
        clock.renewed(time.monotonic())
        gate.confirmed()
        await asyncio.sleep(0.2)
        assert len(received) > before  # the held HEADERS frame left once the leases were sure
        assert b"/invoke/S/h" in bytes(received[before:])
    finally:
        connection.close()
        await asyncio.sleep(0.05)  # the deployment's side sees the end and closes too
        server.close()
        await server.wait_closed()


@pytest.mark.asyncio
async def test_an_http11_request_body_waits_for_the_gate() -> None:
    """For a deployment over HTTP/1.1 the body (Start and the journal: what makes the SDK run
    anything) is handed to the client only once the gate lets it out."""
    received = bytearray()
    got_body = asyncio.Event()

    async def deployment(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.extend(chunk)
            if b"START-AND-JOURNAL" in received:
                got_body.set()
                writer.write(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                    b"connection: close\r\n\r\n"
                )
                break
        writer.close()

    server = await asyncio.start_server(deployment, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = LeaseClock(ttl=5.0)  # never renewed: not sure
    gate = LeaseGate(Recorder(), clock)  # type: ignore[arg-type]
    pool = H2Pool()
    pool.gate = gate
    plan = AttemptPlan(
        invocation_id=InvocationId.new(), service="S", handler="h", key=None,
        deployment_id="dp", uri=f"http://127.0.0.1:{port}", use_http_11=True, bidi=False,
        protocol_version=6, additional_headers={}, payload=b"START-AND-JOURNAL",
        inactivity_timeout=60, abort_timeout=60,
    )  # fmt: skip
    async with httpx.AsyncClient(http1=True, http2=False, timeout=None) as http11:
        attempt = Attempt(
            plan, None, pool=pool, http11=http11, local=LocalApps(),  # type: ignore[arg-type]
            is_current=lambda a: False, on_done=lambda a: None,
        )  # fmt: skip
        task = asyncio.create_task(attempt.run())
        try:
            await asyncio.sleep(0.3)
            assert not got_body.is_set(), "the body left while the leases were not sure"
            clock.renewed(time.monotonic())
            gate.confirmed()
            await asyncio.wait_for(got_body.wait(), 5)
            assert b"content-length: 17" in bytes(received).lower()
        finally:
            await asyncio.wait_for(task, 5)
            await asyncio.sleep(0.05)  # the deployment's side closes too
            server.close()
            await server.wait_closed()
