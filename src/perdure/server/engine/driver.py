"""The engine's driver: runs ``Core`` transitions on the event loop, commits them as a group,
then releases their effects; fires durable timers; holds the ingress requests waiting for results.

A transition of one invocation that raises (a bug, a stored setting that overflows) is contained:
it is rolled back, and the invocation fails instead (``run_for``), so nothing else waits on it.

Every transition runs inside one SQLite transaction that stays open while events keep coming in
the same loop iteration (each event in its own savepoint, so a failing event leaves no trace).
A flush scheduled with ``call_soon`` commits the whole group once and only then dispatches the
effects, so nothing visible ever depends on an uncommitted write.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Protocol, TypeVar, runtime_checkable

from perdure.protocol import Frame, InvocationId
from perdure.server.engine.core import AttemptRejected, Core
from perdure.server.engine.effects import (
    AbortAttempt,
    Completed,
    DeadlockDetected,
    Effect,
    Forward,
    StartAttempt,
    TimerSet,
)
from perdure.server.records import Result
from perdure.server.registry import Registry
from perdure.server.storage import Store

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

    def start(self, invocation_id: InvocationId) -> None: ...
    def forward(self, invocation_id: InvocationId, frame: Frame) -> None: ...
    def abort(self, invocation_id: InvocationId) -> None: ...


Waited = tuple[Result, int | None]
"""An invocation's result and when it expires (for the idempotency-expires header)."""


class Engine:
    def __init__(self, store: Store, registry: Registry, clock: Clock | None = None) -> None:
        self.store = store
        self.registry = registry
        self.clock = clock or SystemClock()
        self.core = Core(store, registry, self.clock.now_ms)
        self.invoker: AttemptRunner | None = None
        self._pending: list[Effect] = []
        self._durable: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._waiters: dict[InvocationId, list[asyncio.Future[Waited]]] = {}
        self._timer_wake = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._savepoints = 0
        self._stepped = isinstance(self.clock, SteppedClock)
        if isinstance(self.clock, SteppedClock):
            self.clock.subscribe(self._timer_wake.set)

    # -- running transitions -------------------------------------------------------------------

    def run(self, transition: Callable[[Core], R]) -> R:
        """Apply one event now; its effects wait for the next group commit."""
        self.store.begin()
        self._savepoints += 1
        name = f"ev{self._savepoints}"
        self.store.db.execute(f"SAVEPOINT {name}")
        try:
            result = transition(self.core)
        except BaseException:
            self.store.db.execute(f"ROLLBACK TO {name}")
            self.store.db.execute(f"RELEASE {name}")
            self.core.take_effects()
            self._schedule_flush()
            raise
        self.store.db.execute(f"RELEASE {name}")
        self._pending.extend(self.core.take_effects())
        self._schedule_flush()
        return result

    def run_for(self, invocation_id: InvocationId, transition: Callable[[Core], object]) -> bool:
        """Apply an event of one invocation; False when it raised and was contained: rolled
        back, and the invocation failed instead (retried per its policy, the error visible as
        its last failure), or paused when even that raises. ``AttemptRejected`` is no error
        here: it passes to the caller (the attempt fails as a protocol violation)."""
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
        """Resolves once everything applied so far is committed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.store.in_transaction and not self._pending:
            future.set_result(None)
        else:
            self._durable.append(future)
            self._schedule_flush()
        return future

    def wait_for(self, invocation_id: InvocationId) -> asyncio.Future[Waited]:
        """Resolves with the invocation's result when it completes. Register before the commit
        that could complete it (i.e. in the same synchronous step as the request)."""
        future: asyncio.Future[Waited] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(invocation_id, []).append(future)
        return future

    @property
    def idle(self) -> bool:
        """Nothing applied and not yet committed, no effect waiting to be released."""
        return not (
            self.store.in_transaction or self._pending or self._durable or self._flush_scheduled
        )

    def waiting_requests(self) -> int:
        """How many ``wait_for`` futures (ingress requests waiting for a result) are open."""
        return sum(not f.done() for futures in self._waiters.values() for f in futures)

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.store.commit()
        self._savepoints = 0
        effects, self._pending = self._pending, []
        durable, self._durable = self._durable, []
        started: set[InvocationId] = set()
        for effect in effects:
            # An attempt started in this group replays the journal as committed now, which
            # already holds the group's later notifications: forwarding them would repeat them.
            if isinstance(effect, StartAttempt):
                started.add(effect.invocation_id)
            elif isinstance(effect, Forward) and effect.invocation_id in started:
                continue
            try:
                self._dispatch(effect)
            except Exception:
                log.exception("dispatching %s failed", effect)
        for future in durable:
            if not future.done():
                future.set_result(None)

    def _dispatch(self, effect: Effect) -> None:
        match effect:
            case StartAttempt(invocation_id):
                if self.invoker is not None:
                    self.invoker.start(invocation_id)
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

    # -- timers --------------------------------------------------------------------------------

    def start(self) -> None:
        """Recover running invocations and start the timer driver."""
        self.run(lambda core: core.recover())
        self._timer_task = asyncio.get_running_loop().create_task(self._timers())

    async def stop(self) -> None:
        if self._timer_task is not None:
            self._timer_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer_task
        self._flush()

    def _fire_one_by_one(self, now: int) -> None:
        for timer in self.store.due_timers(now):
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

    async def _timers(self) -> None:
        while True:
            now = self.clock.now_ms()
            next_at = self.store.next_timer_at()
            if next_at is not None and next_at <= now:
                try:
                    self.run(functools.partial(Core.fire_timers, now=now))
                except Exception:  # one of them raised: fire them one by one, contain it
                    self._fire_one_by_one(now)
                await asyncio.sleep(0)
                continue
            self._timer_wake.clear()
            timeout = None if next_at is None or self._stepped else (next_at - now) / 1000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._timer_wake.wait(), timeout)
