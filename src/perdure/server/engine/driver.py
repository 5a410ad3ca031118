"""The engine's driver: runs ``Core`` transitions on the event loop, commits them in batches
through a pipeline, then releases their effects; fires durable timers; holds the ingress requests
waiting for results.

Every transition runs inside one storage batch that stays open while events keep coming in the
same loop iteration (each event undone on its own if it fails, so a failing event leaves no trace).
A flush scheduled with ``call_soon`` commits the batch (cheap: no fsync) and reads what the
attempts it starts will replay. The batch then waits for durability in the commit pipeline:

* the writer thread makes committed batches durable (``Storage.sync``: the fsync), one sync at a
  time, each covering every batch committed before it began (group commit); fsync never runs on
  the event loop;
* meanwhile the loop applies and commits the next batches. They read the same connection, after
  the previous batch's commit, so they see its writes whether or not they are durable yet;
* a batch's effects (answers, messages to the SDK, started attempts, timers) and its ``durable()``
  futures are released only after a sync that covers it, and batches are released in commit
  order. So nothing leaves the engine before it is durable, and nothing from batch N+1 leaves
  before batch N's effects.

With a store that does not sync (``synchronous=OFF``, tests) a batch is released at its commit.

A transition of one invocation that raises (a bug, a stored setting that overflows) is contained:
it is rolled back, and the invocation fails instead (``run_for``), so nothing else waits on it.

The engine is the only owner of its ``Storage``: everything else reads through its query methods
(``invocation``, ``journal``, ``state``, ``query``...) and writes through transitions (``run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from perdure.protocol import Frame, InvocationId
from perdure.server.engine import inbound
from perdure.server.engine.core import Core
from perdure.server.engine.deadlock import WaitGraph, find_cycle
from perdure.server.engine.delivery import Deliveries
from perdure.server.engine.effects import (
    AbortAttempt,
    AttemptStart,
    Completed,
    DeadlockDetected,
    Effect,
    Forward,
    Outgoing,
    StartAttempt,
    TimerSet,
)
from perdure.server.engine.messages import (
    MessageError,
    NotOwned,
    OutboxMessage,
    TargetNotRegisteredYet,
    Transport,
)
from perdure.server.engine.requests import AttemptRejected
from perdure.server.engine.writer import WriterThread
from perdure.server.partitions import DEFAULT_PARTITIONS, PartitionMap
from perdure.server.records import Invocation, Result, Status, TimerKind
from perdure.server.registry import Registry
from perdure.server.storage import Storage
from perdure.server.storage.hot import HotStore

R = TypeVar("R")
log = logging.getLogger("perdure.server.engine")
TIMER_RETRY_MS = 10_000
"""A timer whose firing raised is tried again this much later (the others fire meanwhile)."""


class Clock(Protocol):
    def now_ms(self) -> int: ...


@runtime_checkable
class SteppedClock(Protocol):
    """A clock that moves only when told (perdure.testing's virtual clock). It calls every
    subscriber when it moves, so the timer loop waits for that instead of real time."""

    def now_ms(self) -> int: ...
    def subscribe(self, on_move: Callable[[], None]) -> None: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class AttemptRunner(Protocol):
    """What the engine needs from the invoker."""

    def start(self, start: AttemptStart) -> None: ...
    def forward(self, invocation_id: InvocationId, frame: Frame) -> None: ...
    def abort(self, invocation_id: InvocationId) -> None: ...


Waited = tuple[Result, int | None]
"""An invocation's result and when it expires (for the idempotency-expires header)."""

UNOWNED_TIMER_POLL = 1.0
"""Seconds between two looks at timers when the due ones are all of partitions not owned (a
released partition whose data is not dropped yet)."""

SYNC_RETRY_DELAY = 0.5
"""Seconds before a failed sync (fsync error) is tried again; its batches wait meanwhile."""


@dataclass(slots=True)
class _Batch:
    """A committed batch waiting in the pipeline: what it releases once durable."""

    effects: list[Effect | AttemptStart]
    durable: list[asyncio.Future[None]] = field(default_factory=list)


class Engine:
    """The engine of one process: owns ``owned`` of the store's partitions (all by default).

    ``partitions``: the partition map (default: the count recorded in the store, fixed when it
    was created). ``owned``: the partitions this engine runs (default: all; a single process
    then behaves as if partitions did not exist: every interaction is local and in one batch).
    ``transport``: carries messages to partitions owned elsewhere (settable later as
    ``engine.transport``).
    """

    def __init__(
        self,
        store: Storage,
        registry: Registry,
        clock: Clock | None = None,
        *,
        partitions: PartitionMap | None = None,
        owned: Iterable[int] | None = None,
        transport: Transport | None = None,
    ) -> None:
        # hot data in memory, written through to the store (storage/hot.py)
        self._store = store if isinstance(store, HotStore) else HotStore(store)
        store = self._store
        self.registry = registry
        registry.load(store.list_deployments(), store.list_services())
        self.clock = clock or SystemClock()
        if partitions is None:
            partitions = PartitionMap(store.partition_count(None, DEFAULT_PARTITIONS))
        else:
            store.partition_count(partitions.count, partitions.count)  # a mismatch raises
        self.partitions = partitions
        owned_set = set(partitions.all if owned is None else owned)
        if not owned_set <= partitions.all:
            raise ValueError(f"owned partitions must be in 0..{partitions.count - 1}")
        self.core = Core(store, registry, self.clock.now_ms, partitions, owned_set)
        self._deliveries = Deliveries(self)
        self._deliveries.transport = transport
        self.invoker: AttemptRunner | None = None
        self._pending: list[Effect] = []
        self._durable: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._committed: list[_Batch] = []  # committed, waiting for the next sync
        self._syncing: list[_Batch] = []  # covered by the sync in flight
        self._sync_in_flight = False
        self._writer = WriterThread(store.sync)
        self._waiters: dict[InvocationId, list[asyncio.Future[Waited]]] = {}
        self._timer_wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stepped = isinstance(self.clock, SteppedClock)
        if isinstance(self.clock, SteppedClock):
            self.clock.subscribe(self._timer_wake.set)

    # -- running transitions -------------------------------------------------------------------

    def run(self, transition: Callable[[Core], R]) -> R:
        """Apply one event now; its effects wait for the next group commit."""
        self._store.begin_event()
        try:
            result = transition(self.core)
        except BaseException:
            self._store.end_event(keep=False)
            self.core.take_effects()
            self._schedule_flush()
            raise
        self._store.end_event(keep=True)
        self._pending.extend(self.core.take_effects())
        self._schedule_flush()
        return result

    def run_for(self, invocation_id: InvocationId, transition: Callable[[Core], object]) -> bool:
        """Apply an event of one invocation; False when it raised and was contained: rolled
        back, and the invocation failed instead (retried per its policy, the error visible as
        its last failure), or paused when even that raises. ``AttemptRejected`` is no error
        here: it passes to the caller (the attempt fails as a protocol violation). False too,
        and nothing applied, when the invocation's partition is not owned (released)."""
        if not self.core.owns(invocation_id.partition_key):
            log.info("an event of %s dropped: its partition is not owned here", invocation_id)
            return False
        try:
            self.run(transition)
            return True
        except AttemptRejected:
            raise
        except Exception as exc:
            log.exception("an event of %s failed; failing the invocation", invocation_id)
            message = f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.run(lambda core: core.on_internal_error(invocation_id, message))
        except Exception:
            log.exception("failing %s raised too; pausing it", invocation_id)
            with contextlib.suppress(Exception):
                self.run(lambda core: core.park(invocation_id, message))
        return False

    def durable(self) -> asyncio.Future[None]:
        """Resolves once everything applied so far is durable (and its effects released)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._store.in_batch or self._pending or self._flush_scheduled:
            self._durable.append(future)
            self._schedule_flush()
        elif self._committed:
            self._committed[-1].durable.append(future)
        elif self._syncing:
            self._syncing[-1].durable.append(future)
        else:
            future.set_result(None)
        return future

    def wait_for(self, invocation_id: InvocationId) -> asyncio.Future[Waited]:
        """Resolves with the invocation's result when it completes. Register before the commit
        that could complete it (i.e. in the same synchronous step as the request)."""
        future: asyncio.Future[Waited] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(future)
        return future

    @property
    def idle(self) -> bool:
        """Nothing applied and not yet durable, no effect waiting to be released."""
        return not (
            self._store.in_batch
            or self._pending
            or self._durable
            or self._flush_scheduled
            or self._committed
            or self._syncing
        )

    def waiting_requests(self) -> int:
        """How many ``wait_for`` futures (ingress requests waiting for a result) are open."""
        return sum(not f.done() for futures in self._waiters.values() for f in futures)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Commit the open batch and queue it for the writer thread's next sync."""
        self._flush_scheduled = False
        committed = self._store.commit()
        batch = _Batch(self._with_attempt_starts(self._pending), self._durable)
        self._pending, self._durable = [], []
        if not committed and not batch.effects and not batch.durable:
            return
        if not self._store.needs_sync and not self._committed and not self._syncing:
            self._release(batch)
            return
        self._committed.append(batch)
        self._start_sync()

    def _start_sync(self) -> None:
        if self._sync_in_flight or not self._committed:
            return
        self._syncing, self._committed = self._committed, []
        self._sync_in_flight = True
        self._writer.request(asyncio.get_running_loop(), self._synced)

    def _synced(self, failure: BaseException | None) -> None:
        self._sync_in_flight = False
        if failure is not None:
            log.error("making committed batches durable failed; retrying", exc_info=failure)
            self._committed[:0] = self._syncing  # keep the order: the oldest first
            self._syncing = []
            asyncio.get_running_loop().call_later(SYNC_RETRY_DELAY, self._start_sync)
            return
        batches, self._syncing = self._syncing, []
        for batch in batches:
            self._release(batch)
        self._start_sync()

    def _release(self, batch: _Batch) -> None:
        for effect in batch.effects:
            try:
                self._dispatch(effect)
            except Exception:
                log.exception("dispatching %s failed", effect)
        for future in batch.durable:
            if not future.done():
                future.set_result(None)

    def _with_attempt_starts(self, effects: list[Effect]) -> list[Effect | AttemptStart]:
        """The effects, each StartAttempt read into the AttemptStart it asks for (None: the
        invocation no longer runs). Called right after the commit, before any other event."""
        starts: dict[InvocationId, AttemptStart | None] = {}
        out: list[Effect | AttemptStart] = []
        for effect in effects:
            # An attempt started in this batch replays the journal as committed now, which
            # already holds the batch's later notifications: forwarding them would repeat them.
            if isinstance(effect, Forward) and effect.invocation_id in starts:
                continue
            if isinstance(effect, StartAttempt):
                if effect.invocation_id not in starts:
                    starts[effect.invocation_id] = self._contained_start(effect.invocation_id)
                start = starts[effect.invocation_id]
                if start is not None:
                    out.append(start)
            else:
                out.append(effect)
        return out

    def _contained_start(self, invocation_id: InvocationId) -> AttemptStart | None:
        """``_attempt_start``; a stored value it cannot read fails this invocation (as a
        transition that raised would), not the flush."""
        try:
            return self._attempt_start(invocation_id)
        except Exception as exc:
            log.exception("reading what an attempt of %s replays failed", invocation_id)
            message = f"internal error planning an attempt: {type(exc).__name__}: {exc}"
            asyncio.get_running_loop().call_soon(
                lambda: self.run_for(
                    invocation_id, lambda core: core.on_internal_error(invocation_id, message)
                )
            )
            return None

    def _attempt_start(self, invocation_id: InvocationId) -> AttemptStart | None:
        store = self._store
        inv = store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return None
        service = self.registry.service(inv.service)
        lazy = service is None or service.lazy_state(service.handler(inv.handler))
        eager = inv.keyed and not lazy
        state = store.get_state(inv.service, inv.key) if eager else []
        journal = store.read_journal(invocation_id)
        return AttemptStart(inv, tuple(journal), tuple(state), partial_state=not eager)

    def _dispatch(self, effect: Effect | AttemptStart) -> None:
        match effect:
            case AttemptStart():
                if self.invoker is not None and self.core.owns(effect.invocation.id.partition_key):
                    self.invoker.start(effect)  # (released meanwhile: its new owner starts it)
            case Forward(invocation_id, frame):
                if self.invoker is not None:
                    self.invoker.forward(invocation_id, frame)
            case AbortAttempt(invocation_id):
                if self.invoker is not None:
                    self.invoker.abort(invocation_id)
            case Completed(invocation_id, result, expires_at):
                for future in self._waiters.pop(invocation_id, []):
                    if not future.done():
                        future.set_result((result, expires_at))
            case TimerSet():
                self._timer_wake.set()
            case DeadlockDetected(_, description):
                log.warning("%s; cancel one of them to resolve it", description)
            case Outgoing(source, target, seq):
                self._deliveries.durable(source, target, seq)

    # -- timers --------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover running invocations, send the outbox again, and start the timer driver (of
        the owned partitions)."""
        self.run(lambda core: core.recover())
        self._deliveries.resend(self.owned)
        self._timer_task = asyncio.get_running_loop().create_task(self._timers())

    # -- partitions ----------------------------------------------------------------------------

    @property
    def owned(self) -> frozenset[int]:
        """The partitions this engine runs now."""
        return self.core.owned

    @property
    def transport(self) -> Transport | None:
        return self._deliveries.transport

    @transport.setter
    def transport(self, transport: Transport | None) -> None:
        self._deliveries.transport = transport

    def owns(self, invocation_id: InvocationId) -> bool:
        """The invocation's partition is owned here."""
        return self.core.owns(invocation_id.partition_key)

    async def acquire(self, partitions: Iterable[int]) -> None:
        """Start running ``partitions``, whose data the store already holds: recover their
        running invocations, send their outbox again; their timers fire from now on."""
        new = set(partitions) - self.core.owned
        if not new <= self.partitions.all:
            raise ValueError(f"partitions must be in 0..{self.partitions.count - 1}")
        if not new:
            return
        self._store.reload()  # their rows are new to the in-memory layer
        self.core.set_owned(self.core.owned | new)
        self.run(lambda core: core.recover(new))
        self._deliveries.resend(sorted(new))
        self._timer_wake.set()
        await self.durable()

    async def release(self, partitions: Iterable[int]) -> None:
        """Stop running ``partitions``: their live attempts are aborted, their timers and
        deliveries stop, and no later event writes to them (an attempt's late messages are
        dropped; messages to them are refused with ``NotOwned``). Returns once what was applied
        before is durable (the caller may then drop their data); then ``wait_for`` futures of
        their invocations fail with ``NotOwned`` (the result will come from the new owner)."""
        gone = set(partitions) & self.core.owned
        if not gone:
            return
        running = [
            inv.id
            for inv in self._store.invocations_with_status(Status.INVOKED)
            if self.partitions.partition_of_id(inv.id) in gone
        ]
        self.core.set_owned(self.core.owned - gone)
        for task in self._deliveries.stop_sources(gone):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.invoker is not None:
            for invocation_id in running:
                self.invoker.abort(invocation_id)
        await self.durable()
        # Requests still waiting for a result of theirs: it will come from the new owner.
        for invocation_id in [
            i for i in self._waiters if self.partitions.partition_of_id(i) in gone
        ]:
            for future in self._waiters.pop(invocation_id):
                if not future.done():
                    future.set_exception(NotOwned(self.partitions.partition_of_id(invocation_id)))

    async def accept(self, source_partition: int, messages: list[OutboxMessage]) -> None:
        """Apply messages from ``source_partition`` (seq order), each exactly once (those
        applied before are dropped by the source's high-water mark), and return once that is
        durable. ``NotOwned`` when a target partition is not owned here (nothing applied);
        ``MessageError`` when a message is not from ``source_partition``;
        ``TargetNotRegisteredYet`` when an invoke's target is not in this engine's registry yet
        (the messages before it are applied: the sender delivers the rest again later)."""
        for message in messages:
            if message.source != source_partition:
                raise MessageError(
                    f"a message from partition {message.source} in a delivery from "
                    f"{source_partition}"
                )
            if message.target not in self.core.owned:
                raise NotOwned(message.target)
        for message in messages:
            try:
                self.run(functools.partial(inbound.accept, message=message))
            except TargetNotRegisteredYet:  # this one and the rest: delivered again later
                await self.durable()
                raise
            except Exception as exc:  # contained: its invocation fails, later messages go on
                log.exception("applying %s failed; it is dropped", message)
                text = f"internal error applying a message: {type(exc).__name__}: {exc}"
                target = message.body.invocation_id
                with contextlib.suppress(Exception):
                    self.run(functools.partial(inbound.skip, message=message))
                fail = functools.partial(Core.on_internal_error, invocation_id=target, message=text)
                with contextlib.suppress(Exception):
                    self.run(fail)
        await self.durable()

    def outbox_rows(self, source: int, target: int | None = None) -> list[tuple[int, int, bytes]]:
        """The unacknowledged messages of partition ``source``: (seq, target, message)."""
        return self._store.read_outbox(self.partitions.key_range(source).start, target)

    def ack(self, source: int, seqs: list[int]) -> None:
        """Messages of ``source`` were applied by their receivers: delete them."""
        pk = self.partitions.key_range(source).start
        self.run(lambda core: core.store.delete_outbox(pk, seqs))

    @property
    def deliveries_pending(self) -> int:
        """(source, target) pairs with messages still being delivered."""
        return self._deliveries.pending

    async def stop(self) -> None:
        """Stop firing timers; commit what is applied and wait until it is durable."""
        self._stopping = True  # asyncio.wait_for (3.11) may swallow a cancel racing a wake-up
        self._timer_wake.set()
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
        await self._deliveries.stop()
        self._flush()
        while self._sync_in_flight or self._committed:
            await self.durable()

    def close(self) -> None:
        """Stop the writer thread and close the store (after ``stop``)."""
        self._writer.stop()
        self._store.close()

    # -- queries (what the APIs, the harness and dev mode may read) ------------------------------
    # They read what is applied, which may not be durable yet: an answer built from them waits
    # for ``durable()`` first.

    def invocation(self, invocation_id: InvocationId) -> Invocation | None:
        return self._store.get_invocation(invocation_id)

    def invocations(self, limit: int = 1000, status: str | None = None) -> list[Invocation]:
        """The newest ``limit`` invocations (with ``status`` only, when given)."""
        return self._store.list_invocations(limit, status)

    def invocations_with_status(self, *statuses: Status) -> list[Invocation]:
        return self._store.invocations_with_status(*statuses)

    def journal(self, invocation_id: InvocationId) -> list[Frame]:
        return self._store.read_journal(invocation_id)

    def state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        return self._store.get_state(service, key)

    def next_timer_at(self, kinds: Iterable[TimerKind] | None = None) -> int | None:
        """When the next timer fires (of ``kinds`` only, when given); a completed invocation's
        retention end counts as an EXPIRE timer."""
        if kinds is not None:
            kinds = set(kinds)
        at = self._store.next_timer_at(kinds)
        if kinds is None or TimerKind.EXPIRE in kinds:
            expiry = self._store.next_expiry_at()
            if expiry is not None and (at is None or expiry < at):
                return expiry
        return at

    def deadlock(self, invocation_id: InvocationId) -> list[Invocation] | None:
        """The wait-for cycle through this invocation (see ``deadlock``), if any."""
        return find_cycle(invocation_id, WaitGraph(self._store))

    def query(
        self, sql: str, *, live: Iterable[str] = (), timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """``POST /query``: one read-only statement over Restate's system tables. Blocking and
        thread-safe (it reads a snapshot of its own): run it in a worker thread."""
        return self._store.query(sql, live=live, timeout=timeout)

    def _fire_one_by_one(self, now: int) -> int:
        fired = 0
        for timer in [*self._store.due_timers(now), *self._store.due_expiries(now)]:
            if not self.core.owns(timer.invocation_id.partition_key):
                continue
            fired += 1
            try:
                self.run(functools.partial(Core.fire_timer, timer=timer))
            except Exception as exc:
                log.exception("firing a %s timer of %s failed", timer.kind, timer.invocation_id)
                message = f"internal error firing a {timer.kind} timer: {type(exc).__name__}: {exc}"
                retry = functools.partial(
                    Core.retry_timer_later, timer=timer, at=now + TIMER_RETRY_MS, message=message
                )
                with contextlib.suppress(Exception):
                    self.run(retry)
        return fired

    async def _timers(self) -> None:
        while not self._stopping:
            now = self.clock.now_ms()
            next_at = self.next_timer_at()
            fired = 0
            if next_at is not None and next_at <= now:
                try:
                    fired = self.run(functools.partial(Core.fire_timers, now=now))
                except Exception:  # one of them raised: fire them one by one, contain it
                    fired = self._fire_one_by_one(now)
                await asyncio.sleep(0)
                if fired:
                    continue
            self._timer_wake.clear()
            timeout = None if next_at is None or self._stepped else (next_at - now) / 1000
            if next_at is not None and next_at <= now:  # due, but of partitions not owned
                timeout = UNOWNED_TIMER_POLL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), timeout)
