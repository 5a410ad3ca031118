"""The attempt driver: runs one handler attempt on top of the VM, in asyncio.

It owns what the sans-IO VM cannot: waking awaiting user code when input arrives, executing
``ctx.run`` closures (as tasks; sync ones in a thread) and applying their retry policy, implicit
cancellation (a cancel signal ends the current await with TerminalError 409 after cancelling the
child calls still in flight), suspension, and the terminal messages of the handler's outcome.
The ASGI endpoint feeds it bytes and drains ``vm.take_output()`` whenever ``output`` is set.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from perdure.protocol.messages import MessageType
from perdure.sdk.definitions import HandlerDef
from perdure.sdk.errors import (
    CANCELLED,
    INTERNAL,
    AttemptEnded,
    SdkControlFlow,
    Suspended,
    TerminalError,
    VMError,
)
from perdure.sdk.serde import Serde
from perdure.sdk.vm import CANCEL_SIGNAL, VM, Failure, NotificationId, Result


def wall_clock_ms() -> int:
    """Real time, milliseconds since the epoch: the SDK's clock unless an App is given one."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class RunRetry:
    """The retry policy of one ``ctx.run`` step. No limit set: retry forever (server policy)."""

    max_attempts: int | None = None
    max_duration: timedelta | None = None
    initial_retry_interval: timedelta | None = None
    max_retry_interval: timedelta | None = None
    retry_interval_factor: float | None = None

    @property
    def limited(self) -> bool:
        return self.max_attempts is not None or self.max_duration is not None

    def next_delay_ms(self, attempts: int) -> int:
        initial = (self.initial_retry_interval or timedelta(milliseconds=50)).total_seconds()
        factor = self.retry_interval_factor or 2.0
        ceiling = (self.max_retry_interval or timedelta(seconds=10)).total_seconds()
        return int(min(ceiling, initial * factor ** max(0, attempts - 1)) * 1000)


@dataclass(slots=True)
class PendingRun:
    """A journaled step whose closure has not produced a proposal in this attempt yet."""

    cid: int
    name: str
    command_index: int
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    serde: Serde
    retry: RunRetry
    task: asyncio.Task[None] | None = None
    proposed: bool = False


@dataclass(slots=True)
class Invocation:
    """One attempt: the VM plus everything that needs an event loop."""

    vm: VM
    handler: HandlerDef
    output: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the VM has bytes to send."""
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when input arrived, the input closed, or a run finished."""
    runs: dict[NotificationId, PendingRun] = field(default_factory=dict)
    child_calls: list[tuple[NotificationId, NotificationId]] = field(default_factory=list)
    cancel_seen: bool = False
    clock: Callable[[], int] = wall_clock_ms
    """Milliseconds since the epoch, for sleep wake-ups and delayed sends (the App's clock)."""
    waiting: bool = False
    """True while the handler awaits only the server (no step of its own is running)."""
    need_input: Callable[[], None] | None = None
    """Called when the handler first waits for a durable result: the endpoint reads the rest of
    the request from then on (a handler that never waits needs no reader running)."""

    @property
    def blocked(self) -> bool:
        """The handler can go on only once the server sends something (perdure.testing's
        virtual clock jumps only when every live attempt is blocked)."""
        return self.waiting and not self.progress.is_set() and not self.output.is_set()

    def flush(self) -> None:
        self.output.set()

    # -----------------------------------------------------------------------------------------
    # Awaiting durable results
    # -----------------------------------------------------------------------------------------

    async def await_until(self, leaves: list[NotificationId], done: Callable[[], bool]) -> None:
        """Return once ``done()`` holds, consuming notifications one at a time in journal order.

        Raises TerminalError(409) when the invocation is cancelled first, Suspended when the
        input is closed and nothing awaited can make progress, AttemptEnded when the attempt
        is over.
        """
        vm = self.vm
        while True:
            self.progress.clear()
            if vm.closed:
                raise AttemptEnded()
            if done():
                return
            if not self.cancel_seen and vm.result(CANCEL_SIGNAL) is not None:
                await self._cancelled()
            if vm.pop_one():
                continue
            if vm.replaying:
                vm.fail(
                    VMError(
                        570,
                        "journal mismatch: the code awaits a result the journal does not hold "
                        "while replaying (an await was added before existing steps?)",
                    )
                )
                self.flush()
                raise AttemptEnded()
            running = False
            for nid in leaves:
                run = self.runs.get(nid)
                if run is None or run.proposed or vm.result(nid) is not None:
                    continue
                if run.task is None:
                    run.task = asyncio.create_task(self._execute(run))
                running = True
            if vm.input_closed and not running:
                awaited = [n for n in leaves if vm.result(n) is None]
                if not self.cancel_seen:
                    awaited.append(CANCEL_SIGNAL)
                vm.sys_suspend(awaited)
                self.flush()
                raise Suspended()
            if self.need_input is not None:
                self.need_input()
                self.need_input = None
            self.waiting = not running
            try:
                await self.progress.wait()
            finally:
                self.waiting = False

    async def _cancelled(self) -> None:
        """Implicit cancellation: cancel in-flight child calls, then fail the await with 409."""
        self.cancel_seen = True
        for id_nid, result_nid in self.child_calls:
            if self.vm.result(result_nid) is not None:
                continue
            await self.await_until([id_nid], lambda n=id_nid: self.vm.result(n) is not None)  # type: ignore[misc]
            target = self.vm.result(id_nid)
            assert target is not None
            self.vm.sys_cancel_invocation(str(target.value))
        self.flush()
        raise TerminalError("cancelled", CANCELLED)

    # -----------------------------------------------------------------------------------------
    # Durable steps
    # -----------------------------------------------------------------------------------------

    def register_run(self, nid: NotificationId, run: PendingRun) -> None:
        if self.vm.result(nid) is None:
            self.runs[nid] = run

    async def _execute(self, run: PendingRun) -> None:
        vm = self.vm
        started = time.monotonic()
        try:
            if inspect.iscoroutinefunction(run.fn):
                value = await run.fn(*run.args)
            else:
                value = await asyncio.to_thread(run.fn, *run.args)
                if inspect.isawaitable(value):
                    value = await value
            result = Result("value", run.serde.serialize(value))
        except TerminalError as exc:
            result = Result("failure", Failure(exc.status_code, exc.message, exc.metadata))
        except SdkControlFlow:
            return
        except Exception as exc:
            failed = self._retry_or_fail(run, exc, time.monotonic() - started)
            if failed is None:
                return
            result = failed
        if vm.closed:
            return
        vm.sys_propose_run_completion(run.cid, result)
        run.proposed = True
        self.flush()
        self.progress.set()

    def _retry_or_fail(self, run: PendingRun, exc: Exception, elapsed: float) -> Result | None:
        """A retryable failure of a step: end the attempt, or (retries spent) a terminal 500."""
        vm = self.vm
        count, duration_ms = 0, 0
        # The retry counters of StartMessage belong to the step the last attempt stopped at:
        # the last command it journaled.
        if run.command_index == vm.replayed_commands - 1:
            info = vm.start_info()
            count, duration_ms = info.retry_count, info.retry_duration_ms
        count += 1
        duration_ms += int(elapsed * 1000)
        policy = run.retry
        exhausted = (policy.max_attempts is not None and policy.max_attempts <= count) or (
            policy.max_duration is not None
            and policy.max_duration.total_seconds() * 1000 <= duration_ms
        )
        message = f"{type(exc).__name__}: {exc}"
        if exhausted:
            return Result("failure", Failure(INTERNAL, message))
        if not vm.closed:
            vm.sys_error(
                INTERNAL,
                f"ctx.run {run.name!r} failed: {message}",
                stacktrace="".join(traceback.format_exception(exc)),
                related=(run.command_index, int(MessageType.RUN), run.name),
                next_retry_delay_ms=policy.next_delay_ms(count) if policy.limited else None,
            )
        self.flush()
        self.progress.set()
        return None

    # -----------------------------------------------------------------------------------------
    # The handler
    # -----------------------------------------------------------------------------------------

    async def run_handler(self, ctx: Any) -> None:
        """Run the user's handler to its end and write the matching terminal messages."""
        vm = self.vm
        handler = self.handler
        try:
            command = vm.sys_input()
            ctx._set_input(command)
            if handler.takes_input:
                arg = handler.input_serde.deserialize(command.value.content)
                value = await handler.fn(ctx, arg)
            else:
                value = await handler.fn(ctx)
            payload = handler.output_serde.serialize(value)
            vm.sys_write_output(value=payload)
            vm.sys_end()
        except TerminalError as exc:
            if not vm.closed:
                vm.sys_write_output(failure=Failure(exc.status_code, exc.message, exc.metadata))
                vm.sys_end()
        except SdkControlFlow:
            pass
        except VMError as exc:
            vm.fail(exc)
        except Exception as exc:
            vm.sys_error(
                INTERNAL,
                f"{type(exc).__name__}: {exc}",
                stacktrace="".join(traceback.format_exception(exc)),
                related=vm.last_command,
            )
        finally:
            for run in self.runs.values():
                if run.task is not None and not run.task.done():
                    run.task.cancel()
            self.flush()


__all__ = ["Invocation", "PendingRun", "RunRetry"]
