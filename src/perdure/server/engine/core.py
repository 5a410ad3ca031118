"""The engine's transitions: (stored state, event) -> (writes, effects).

``Core`` owns no I/O. Each public method is one event; it reads and writes through ``Storage``
(inside the batch the driver keeps open) and queues ``Effect``s that the driver releases after
the batch is durable. Time comes from the injected ``now`` function.

Events: an invocation is requested (ingress, or a Call/OneWayCall command); an attempt sends a
command, a run proposal, or ends (End, Suspension, Error/failure); a timer fires; a signal arrives
(awakeable, cancel); an operator cancels, kills, purges, pauses or resumes.

``Core`` is the one entry point and holds what every transition shares (storage, registry, clock,
queued effects); the transitions live in one module per concept:
* ``lifecycle``: creating, starting or queueing, and how attempts end;
* ``commands``: the commands and run proposals of a live attempt;
* ``notify``: notifications and signals delivered into journals;
* ``completion``: results answered, locks passed on, retention and purge;
* ``timers``: durable timers firing;
* ``operator``: cancel, kill, purge, pause, resume;
* ``containment``: a transition that raised fails its own invocation only;
* ``outbox`` and ``inbound``: what touches a partition this engine does not own leaves as a
  message, and the messages other partitions send are applied.

``Core`` owns a set of partitions (``owned``, all of them by default). Only transitions that touch
an invocation of a partition it does not own behave differently: they write a message instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from perdure.protocol import Frame, InvocationId
from perdure.protocol import messages as m
from perdure.server.engine import (
    commands,
    completion,
    containment,
    lifecycle,
    notify,
    operator,
    timers,
)
from perdure.server.engine.effects import Effect
from perdure.server.engine.requests import (
    INTERNAL_ERROR,
    PROTOCOL_VIOLATION,
    AttemptRejected,
    InvokeOutcome,
    InvokeRequest,
    UnknownTarget,
)
from perdure.server.partitions import PartitionMap
from perdure.server.records import Invocation, Result, Timer
from perdure.server.registry import Registry
from perdure.server.storage import Storage

__all__ = [
    "INTERNAL_ERROR",
    "PROTOCOL_VIOLATION",
    "AttemptRejected",
    "Core",
    "InvokeOutcome",
    "InvokeRequest",
    "UnknownTarget",
]


class Core:
    def __init__(
        self,
        store: Storage,
        registry: Registry,
        now: Callable[[], int],
        partitions: PartitionMap | None = None,
        owned: Iterable[int] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.now = now
        self._effects: list[Effect] = []
        self.partitions = partitions or PartitionMap()
        self.owned: frozenset[int] = frozenset()
        """The partitions this core owns (``set_owned`` changes it: acquire/release)."""
        self.local_only = True
        """Every partition is owned: nothing is ever sent (the fast path of one process)."""
        self.set_owned(self.partitions.all if owned is None else owned)
        self.senders: list[int] = []
        """The partitions on whose behalf messages are sent now (see ``outbox.sending_as``)."""

    def set_owned(self, owned: Iterable[int]) -> None:
        self.owned = frozenset(owned)
        self.local_only = len(self.owned) == self.partitions.count

    def owns(self, partition_key: int) -> bool:
        """The partition of ``partition_key`` is owned here: its rows may be written."""
        return self.local_only or self.partitions.partition_of(partition_key) in self.owned

    def emit(self, effect: Effect) -> None:
        """Queue an effect for release after the batch is durable."""
        self._effects.append(effect)

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def get(self, invocation_id: InvocationId) -> Invocation | None:
        return self.store.get_invocation(invocation_id)

    # -- events --------------------------------------------------------------------------------

    def invoke(self, req: InvokeRequest) -> InvokeOutcome:
        return lifecycle.invoke(self, req)

    def recover(self, partitions: Iterable[int] | None = None) -> int:
        """After a restart: start an attempt for every invocation that was running (of
        ``partitions`` only, when given)."""
        return lifecycle.recover(self, partitions)

    def restart(self, invocation_id: InvocationId) -> bool:
        return lifecycle.restart(self, invocation_id)

    def on_command(self, invocation_id: InvocationId, frame: Frame, pin: tuple[str, int]) -> None:
        commands.on_command(self, invocation_id, frame, pin)

    def on_proposal(self, invocation_id: InvocationId, frame: Frame) -> None:
        commands.on_proposal(self, invocation_id, frame)

    def on_end(self, invocation_id: InvocationId) -> None:
        lifecycle.on_end(self, invocation_id)

    def on_suspension(self, invocation_id: InvocationId, message: m.SuspensionMessage) -> None:
        lifecycle.on_suspension(self, invocation_id, message)

    def on_failure(
        self,
        invocation_id: InvocationId,
        code: int,
        message: str,
        next_retry_delay: int | None = None,
    ) -> None:
        lifecycle.on_failure(self, invocation_id, code, message, next_retry_delay)

    def signal(
        self,
        invocation_id: InvocationId,
        *,
        index: int | None = None,
        name: str | None = None,
        result: Result | None = None,
    ) -> None:
        notify.signal(self, invocation_id, index=index, name=name, result=result)

    def fire_timers(self, now: int) -> int:
        return timers.fire_timers(self, now)

    def fire_timer(self, timer: Timer) -> None:
        timers.fire_timer(self, timer)

    def retry_timer_later(self, timer: Timer, at: int, message: str) -> None:
        timers.retry_timer_later(self, timer, at, message)

    # -- containment: a transition that raised fails its own invocation only ---------------------

    def on_internal_error(self, invocation_id: InvocationId, message: str) -> None:
        containment.on_internal_error(self, invocation_id, message)

    def record_failure(self, invocation_id: InvocationId, message: str) -> None:
        containment.record_failure(self, invocation_id, message)

    def park(self, invocation_id: InvocationId, message: str) -> None:
        containment.park(self, invocation_id, message)

    # -- operator actions ----------------------------------------------------------------------

    def cancel(self, invocation_id: InvocationId) -> str:
        return operator.cancel(self, invocation_id)

    def kill(self, invocation_id: InvocationId, _seen: set[InvocationId] | None = None) -> str:
        return operator.kill(self, invocation_id, _seen)

    def purge(self, invocation_id: InvocationId) -> str:
        return operator.purge(self, invocation_id)

    def pause(self, invocation_id: InvocationId) -> str:
        return operator.pause(self, invocation_id)

    def resume(self, invocation_id: InvocationId) -> str:
        return operator.resume(self, invocation_id)

    # -- steps shared by the transition modules --------------------------------------------------

    def _notify(
        self, invocation_id: InvocationId, frame: Frame, key: str, *, progress: bool = False
    ) -> None:
        notify.notify(self, invocation_id, frame, key, progress=progress)

    def _start_or_queue(self, inv: Invocation) -> None:
        lifecycle.start_or_queue(self, inv)

    def _start(self, inv: Invocation) -> None:
        lifecycle.start(self, inv)

    def _complete(self, inv: Invocation, result: Result) -> None:
        completion.complete(self, inv, result)

    def _purge(self, inv: Invocation) -> None:
        completion.purge(self, inv)
