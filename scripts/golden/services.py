"""Services written with the OFFICIAL Restate Python SDK (restate-sdk==1.2.0).

Used only by ``record.py`` to produce golden protocol fixtures: every handler is
small and deterministic, and together they make the official server and SDK
exchange as many service-protocol V6 message types as SDK 1.2.0 can produce.

Serve with:  hypercorn --bind 127.0.0.1:PORT services:app
"""

from __future__ import annotations

from datetime import timedelta

import restate
from restate import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)
from restate.exceptions import RetryableError

# Attempts seen by this process, per handler: used to fail the first attempt only.
_ATTEMPTS: dict[str, int] = {}


def _first_attempt(tag: str) -> bool:
    _ATTEMPTS[tag] = _ATTEMPTS.get(tag, 0) + 1
    return _ATTEMPTS[tag] == 1


# --------------------------------------------------------------------------- Greeter
greeter = Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    """Start, Input, Output(value), End."""
    return f"Hello {name}"


@greeter.handler()
async def fail(ctx: Context, name: str) -> str:
    """Output(failure with metadata)."""
    raise TerminalError(f"no greeting for {name}", status_code=418, metadata={"reason": "teapot"})


@greeter.handler()
async def flaky(ctx: Context, name: str) -> str:
    """ErrorMessage on the first attempt (plain exception), success on the retry."""
    if _first_attempt("flaky"):
        raise RuntimeError("first attempt fails")
    return f"recovered {name}"


@greeter.handler()
async def flaky_delay(ctx: Context, name: str) -> str:
    """ErrorMessage with next_retry_delay (RetryableError.retry_after) on the first attempt."""
    if _first_attempt("flaky_delay"):
        raise RetryableError("retry me later", retry_after=timedelta(milliseconds=200))
    return f"recovered {name}"


@greeter.handler()
async def sleepy(ctx: Context, millis: int) -> str:
    """Sleep -> Suspension -> SleepCompletion."""
    await ctx.sleep(timedelta(milliseconds=millis), name="nap")
    return "slept"


def _double(x: int) -> int:
    return x * 2


def _explode() -> int:
    raise TerminalError("run failed", status_code=422, metadata={"step": "explode"})


@greeter.handler()
async def runs(ctx: Context, x: int) -> str:
    """Run + ProposeRunCompletion(value) + RunCompletion, and a run failing terminally."""
    doubled = await ctx.run_typed("double", _double, RunOptions(type_hint=int), x)
    try:
        await ctx.run_typed("explode", _explode, RunOptions(type_hint=int))
        failed = "no"
    except TerminalError as e:
        failed = f"{e.status_code}:{e.message}"
    return f"{doubled}/{failed}"


def _flaky_step() -> str:
    if _first_attempt("run_retry"):
        raise RuntimeError("transient run failure")
    return "ok"


@greeter.handler()
async def run_retry(ctx: Context, name: str) -> str:
    """A run whose first execution fails transiently (ErrorMessage related to the Run command)."""
    res = await ctx.run_typed("flaky_step", _flaky_step, RunOptions(type_hint=str))
    return f"{name}:{res}"


@greeter.handler()
async def caller(ctx: Context, name: str) -> str:
    """Call (ok + terminal failure), OneWayCall (now + delayed), idempotent object call."""
    hello = await ctx.service_call(greet, name)
    try:
        await ctx.service_call(fail, name)
        failed = "no"
    except TerminalError as e:
        failed = str(e.status_code)
    ctx.service_send(greet, "later", send_delay=timedelta(milliseconds=300))
    handle = ctx.service_send(greet, "now")
    await handle.invocation_id()
    total = await ctx.object_call(add, "k-call", 5, idempotency_key="idem-call-1")
    return f"{hello}|{failed}|{total}"


@greeter.handler()
async def attacher(ctx: Context, name: str) -> str:
    """OneWayCall + invocation id notification, then AttachInvocation (value)."""
    handle = ctx.service_send(greet, name)
    inv_id = await handle.invocation_id()
    return await ctx.attach_invocation(inv_id, type_hint=str)


@greeter.handler()
async def canceller(ctx: Context) -> str:
    """SendSignal(idx=1) via ctx.cancel_invocation, then AttachInvocation (failure 409)."""
    handle = ctx.service_send(block, None)
    inv_id = await handle.invocation_id()
    ctx.cancel_invocation(inv_id)
    try:
        await ctx.attach_invocation(inv_id, type_hint=str)
        return "not cancelled"
    except TerminalError as e:
        return f"cancelled:{e.status_code}"


# --------------------------------------------------------------------------- Waiter
waiter = Service("Waiter")


@waiter.handler()
async def wait_awakeable(ctx: Context, key: str) -> str:
    """Awakeable (signal idx 17); its id is published to Holder/<key> for the driver."""
    awk_id, fut = ctx.awakeable(type_hint=str)
    ctx.object_send(hold, key, awk_id)
    return await fut


@waiter.handler()
async def complete_awakeables(ctx: Context, ids: dict) -> str:
    """CompleteAwakeable with a value and with a failure."""
    ctx.resolve_awakeable(ids["resolve"], "from-handler")
    ctx.reject_awakeable(ids["reject"], "rejected-by-handler", 400)
    return "done"


@waiter.handler()
async def wait_signal(ctx: Context) -> str:
    """Named signals: one resolved, one rejected (SignalNotification by name)."""
    go = await ctx.signal("go", type_hint=str)
    try:
        await ctx.signal("stop", type_hint=str)
        stop = "no"
    except TerminalError as e:
        stop = f"{e.status_code}:{e.message}"
    return f"{go}/{stop}"


@waiter.handler()
async def send_signals(ctx: Context, target: str) -> str:
    """SendSignal by name (value and failure)."""
    ctx.resolve_signal(target, "go", "green")
    ctx.reject_signal(target, "stop", "red", 451)
    return "sent"


@waiter.handler()
async def block(ctx: Context) -> str:
    """Waits forever on an awakeable; only ends by cancellation."""
    _, fut = ctx.awakeable(type_hint=str)
    return await fut


# --------------------------------------------------------------------------- Holder
holder = VirtualObject("Holder")


@holder.handler()
async def hold(ctx: ObjectContext, value: str) -> None:
    ctx.set("id", value)


@holder.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("id", type_hint=str)


# --------------------------------------------------------------------------- Counters
counter = VirtualObject("Counter")
lazy_counter = VirtualObject("LazyCounter", enable_lazy_state=True)


async def _add(ctx: ObjectContext, n: int) -> int:
    current = await ctx.get("count", type_hint=int) or 0
    ctx.set("count", current + n)
    ctx.set("last", n)
    return current + n


async def _reset(ctx: ObjectContext) -> list[str]:
    keys = await ctx.state_keys()
    ctx.clear("last")
    ctx.clear_all()
    return sorted(keys)


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    """GetEagerState, SetState (Start.state_map non-empty on the second call)."""
    return await _add(ctx, n)


@counter.handler()
async def reset(ctx: ObjectContext) -> list[str]:
    """GetEagerStateKeys, ClearState, ClearAllState."""
    return await _reset(ctx)


@lazy_counter.handler(name="add")
async def lazy_add(ctx: ObjectContext, n: int) -> int:
    """GetLazyState + GetLazyStateCompletion."""
    return await _add(ctx, n)


@lazy_counter.handler(name="reset")
async def lazy_reset(ctx: ObjectContext) -> list[str]:
    """GetLazyStateKeys + GetLazyStateKeysCompletion."""
    return await _reset(ctx)


# --------------------------------------------------------------------------- Signup
signup = Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, name: str) -> str:
    """GetPromise (value and failure), PeekPromise (value)."""
    ctx.set("name", name)
    approval = await ctx.promise("approval", type_hint=str).value()
    try:
        await ctx.promise("second", type_hint=str).value()
        second = "no"
    except TerminalError as e:
        second = f"{e.status_code}:{e.message}"
    peeked = await ctx.promise("approval", type_hint=str).peek()
    return f"{name}:{approval}:{second}:{peeked}"


@signup.handler()
async def approve(ctx: WorkflowSharedContext, value: str) -> str:
    """CompletePromise(value); the second call gets a failed completion (already completed)."""
    try:
        await ctx.promise("approval", type_hint=str).resolve(value)
        return "ok"
    except TerminalError as e:
        return f"failed:{e.status_code}"


@signup.handler()
async def reject_second(ctx: WorkflowSharedContext) -> str:
    """CompletePromise(failure)."""
    await ctx.promise("second", type_hint=str).reject("denied", 403)
    return "rejected"


@signup.handler()
async def peek(ctx: WorkflowSharedContext) -> str | None:
    """PeekPromise (void while unresolved)."""
    return await ctx.promise("approval", type_hint=str).peek()


app = restate.app(services=[greeter, waiter, holder, counter, lazy_counter, signup])
