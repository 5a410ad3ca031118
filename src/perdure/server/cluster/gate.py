"""The lease gate: what this node sends to deployments waits while it cannot be sure that it
still holds its leases.

A node frozen past its lease (SIGSTOP, a stall) wakes up with effects that were durable before it
froze and not yet sent: a journal ack, a completion, an attempt start. Its attempts are zombies by
then: another node took the partitions over and re-runs those invocations. Sending the ack would
let the zombie's handler go on and execute a step the new owner already ran and acknowledged. So
the engine's attempt runner sits behind this gate, and so does every socket write to a
deployment (``hold``): by this node's own monotonic clock, a lease is
sure only until the start of the last successful renewal plus the TTL minus a margin (PostgreSQL
expires it no earlier); past that, ``start`` and ``forward`` are held, in order, until the next
renewal confirms the leases (then they go out) or finds them taken over (then the node stops and
they never do). ``abort`` always passes: stopping an attempt is always safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from perdure.protocol import Frame, InvocationId
from perdure.server.engine.driver import AttemptRunner
from perdure.server.engine.effects import AttemptStart

log = logging.getLogger("perdure.server.cluster")
MARGIN = 1.0
"""Seconds taken off the TTL for the difference between this node's clock and PostgreSQL's."""


class LeaseClock:
    """Until when this node's leases are sure (monotonic seconds); set by the lease keeper."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self.sure_until = 0.0

    def renewed(self, tick_started: float) -> None:
        """A renewal that began at ``tick_started`` (monotonic) succeeded."""
        self.sure_until = max(self.sure_until, tick_started + self.ttl - MARGIN)

    def sure(self) -> bool:
        return time.monotonic() < self.sure_until


class LeaseGate:
    """An ``AttemptRunner`` that forwards to ``runner`` while the leases are sure."""

    def __init__(self, runner: AttemptRunner, clock: LeaseClock) -> None:
        self.runner = runner
        self.clock = clock
        self._held: list[Callable[[], None]] = []

    def start(self, start: AttemptStart) -> None:
        self._pass(lambda: self.runner.start(start))

    def forward(self, invocation_id: InvocationId, frame: Frame) -> None:
        self._pass(lambda: self.runner.forward(invocation_id, frame))

    def abort(self, invocation_id: InvocationId) -> None:
        self.runner.abort(invocation_id)

    @property
    def holding(self) -> int:
        return len(self._held)

    def hold(self, send: Callable[[], None]) -> bool:
        """The check at the moment of writing to a deployment (``invoker.h2.SendGate``): True
        when the leases are not sure, or something is already held, and then ``send`` runs
        after what is held. Checking only when effects leave the engine is not enough: the
        invoker writes them a few loop turns later, and a node paused in between would write
        them on waking, after its leases moved."""
        if not self._held and self.clock.sure():
            return False
        if not self._held:
            log.warning(
                "the leases are not sure (no renewal for %.1fs): holding what goes to "
                "deployments until the next renewal",
                self.clock.ttl - MARGIN,
            )
        self._held.append(send)
        return True

    def _pass(self, call: Callable[[], None]) -> None:
        if not self.hold(call):
            call()

    def confirmed(self) -> None:
        """The leases were renewed: send what was held, in order (on the event loop)."""
        if not self.clock.sure():
            return
        held, self._held = self._held, []
        for call in held:
            try:
                call()
            except Exception:
                log.exception("sending a held effect failed")

    def confirm_soon(self, loop: asyncio.AbstractEventLoop) -> None:
        """From the keeper's thread: ``confirmed`` on the loop."""
        if self._held:
            loop.call_soon_threadsafe(self.confirmed)
