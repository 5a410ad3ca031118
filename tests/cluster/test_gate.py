"""The lease gate: effects for deployments pass while the leases are sure by the node's clock,
wait (in order) while they are not, and go out when a renewal confirms them."""

from __future__ import annotations

import time
from typing import Any

from perdure.server.cluster.gate import MARGIN, LeaseClock, LeaseGate


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
