"""A cluster node: the lease keeper, the fence, and the moves of partitions in and out of this
node's engine and working copy.

* gained (a claim won): the fence allows the new epoch, the store loads the partitions' rows
  from PostgreSQL into the working copy, the engine acquires them (recovers their invocations,
  resends their outbox, runs their timers);
* given back (surplus, or leaving): the engine releases them, everything written for them is
  made durable (the leases are still ours meanwhile), the fence stops them, the working copy
  drops them; only then is the lease freed;
* lost (taken over while this node was paused or cut off past its lease): the fence refuses
  every further commit at once and the node stops dead, as a crash would (``on_lost``: by
  default the process exits with ``EXIT_LOST``; a supervisor starts it again and it rejoins
  with a clean working copy). Why not drop just those partitions and go on: batches applied
  but not yet durable may hold writes to them, and the engine would release those batches'
  effects (acknowledgements, journal acks to the SDK) once the rest is shipped, acknowledging
  what the new owner never saw; a stop releases nothing that was not durable.

Moves run one at a time, in order, on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Protocol

from perdure.server.cluster.fencing import LeaseFence
from perdure.server.cluster.gate import LeaseClock, LeaseGate
from perdure.server.cluster.keeper import LeaseKeeper, Timing
from perdure.server.storage.postgres.leases import ClusterView, LeaseTable, NodeAddress

if TYPE_CHECKING:
    from perdure.server.engine.driver import AttemptRunner

log = logging.getLogger("perdure.server.cluster")
ACQUIRE_RETRY = 0.25
"""Seconds before a failed acquisition is tried again (doubling up to 5 s)."""
EXIT_LOST = 75
"""The exit status of a node that lost a lease it still held (EX_TEMPFAIL: start it again)."""


def exit_lost(partitions: set[int]) -> None:
    """The default ``on_lost``: stop this process now, releasing nothing more."""
    logging.shutdown()
    os._exit(EXIT_LOST)


class PartitionedStore(Protocol):
    """What a node needs from its store (the PostgreSQL-backed working copy)."""

    def load_partitions(self, partitions: Iterable[int]) -> None: ...
    def drop_partitions(self, partitions: Iterable[int]) -> None: ...


class PartitionedEngine(Protocol):
    """What a node needs from its engine."""

    @property
    def owned(self) -> frozenset[int]: ...
    async def acquire(self, partitions: Iterable[int]) -> None: ...
    async def release(self, partitions: Iterable[int]) -> None: ...
    def durable(self) -> asyncio.Future[None]: ...


class ClusterNode:
    def __init__(
        self,
        dsn: str,
        address: NodeAddress,
        *,
        partitions: int,
        engine: PartitionedEngine,
        store: PartitionedStore,
        fence: LeaseFence | None = None,
        timing: Timing | None = None,
        on_lost: Callable[[set[int]], None] = exit_lost,
    ) -> None:
        self.address = address
        self.partitions = partitions
        self.engine = engine
        self.store = store
        self.timing = timing or Timing()
        self.on_lost = on_lost
        self.fence = fence or LeaseFence(address.name)
        self.secret = ""
        """The cluster's peer secret (read at ``start``)."""
        self.table = LeaseTable(dsn, address, self.timing.ttl)
        self.lease_clock = LeaseClock(self.timing.ttl)
        self.gate: LeaseGate | None = None
        """Set by ``guard``: the engine's attempt runner behind the lease clock."""
        self.keeper = LeaseKeeper(
            self.table,
            self.timing,
            gained=self._gained,
            lost=self._lost,
            give_back=self._give_back,
            renewed=self._renewed,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._moves: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._mover: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.address.name

    @property
    def view(self) -> ClusterView | None:
        return self.keeper.view

    def guard(self, runner: AttemptRunner) -> LeaseGate:
        """``runner`` (the engine's invoker) behind the lease gate; the engine gets the gate."""
        self.gate = LeaseGate(runner, self.lease_clock)
        return self.gate

    async def setup(self) -> None:
        """Create the cluster's tables if missing and read the peer secret."""
        self.secret = await asyncio.to_thread(self.table.setup, self.partitions)

    async def start(self) -> None:
        """Join (after ``setup``): a first tick claims this node's share and those partitions are
        acquired before this returns; then the keeper ticks on."""
        self._loop = asyncio.get_running_loop()
        self._mover = self._loop.create_task(self._run_moves())
        await asyncio.to_thread(self.keeper.tick)
        await self._settled()
        self.keeper.start()

    async def leave(self) -> None:
        """After the engine stopped (everything durable): free every lease at once, so that the
        other nodes take the partitions over without waiting for the TTL."""
        await asyncio.to_thread(self.keeper.leave)
        if self._mover is not None:
            self._mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mover
        await asyncio.to_thread(self.table.close)

    async def _settled(self) -> None:
        """Wait until the moves queued so far are done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def mark() -> None:
            done.set_result(None)

        self._moves.put_nowait(mark)
        await done

    async def _run_moves(self) -> None:
        while True:
            move = await self._moves.get()
            try:
                await move()
            except Exception:
                log.exception("moving partitions failed")

    def _queue(self, move: Callable[[], Awaitable[None]]) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._moves.put_nowait, move)

    # -- called on the keeper's thread ---------------------------------------------------------

    def _renewed(self, began: float) -> None:
        self.lease_clock.renewed(began)
        if self.gate is not None and self._loop is not None:
            self.gate.confirm_soon(self._loop)

    def _gained(self, won: dict[int, int]) -> None:
        for p, epoch in won.items():
            self.fence.grant(p, epoch)
        self._queue(lambda: self._acquire(sorted(won)))

    def _lost(self, partitions: set[int]) -> None:
        self.fence.revoke(self.fence.epochs)  # not one more commit, of any partition
        log.critical(
            "the leases of partitions %s were taken over by another node (this one was paused "
            "or cut off longer than the %ss lease); stopping: nothing not yet durable is "
            "released, a restart rejoins the cluster clean",
            sorted(partitions),
            self.timing.ttl,
        )
        self.on_lost(partitions)

    def _give_back(self, partitions: list[int]) -> concurrent.futures.Future[None]:
        """The hand-over runs as a move (after any acquisition queued before it); the future
        tells the keeper when the leases may be freed."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()

        async def hand_over() -> None:
            try:
                await self._hand_over(partitions)
            except BaseException as exc:
                done.set_exception(exc)
                raise
            done.set_result(None)

        self._queue(hand_over)
        return done

    # -- the moves (on the event loop) ---------------------------------------------------------

    async def _acquire(self, partitions: list[int]) -> None:
        """Load and acquire, retried while the leases are still ours (PostgreSQL may be away
        for a moment; if it stays away, the leases lapse and another node takes over)."""
        delay = ACQUIRE_RETRY
        while mine := [p for p in partitions if p in self.fence.epochs]:
            try:
                await asyncio.to_thread(self.store.load_partitions, mine)
                await self.engine.acquire(mine)
            except Exception as exc:
                log.warning("acquiring partitions %s failed (retrying): %r", mine, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            log.info("acquired partitions %s", mine)
            return

    async def _hand_over(self, partitions: list[int]) -> None:
        await self.engine.release(partitions)
        await self.engine.durable()
        # In a thread: the working copy's other connection waits for the engine's batches,
        # which commit on this loop.
        await asyncio.to_thread(self.store.drop_partitions, partitions)
        self.fence.revoke(partitions)
        log.info("handed partitions %s over", partitions)
