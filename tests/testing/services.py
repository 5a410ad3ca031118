"""Services the perdure.testing tests run in a harness."""

from __future__ import annotations

import itertools
from datetime import timedelta

import perdure
from perdure import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    RetryPolicy,
    TerminalError,
    WorkflowContext,
    WorkflowSharedContext,
)

# -- a service, an object and a workflow ----------------------------------------------------------

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def greet_later(ctx: Context, name: str) -> str:
    """Sleeps five days first."""
    await ctx.sleep(timedelta(days=5), name="nap")
    return f"Hello {name}, five days later"


@greeter.handler()
async def refuse(ctx: Context, name: str) -> str:
    raise TerminalError(f"no greeting for {name}", status_code=403)


counter = perdure.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + delta
    ctx.set("total", total)
    return total


@counter.handler()
async def stamp(ctx: ObjectContext) -> None:
    """Stores a value that is not JSON."""
    ctx.set("raw", b"\x00\xff", serde=perdure.BytesSerde())


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return await ctx.get("total", type_hint=int) or 0


@counter.handler()
async def add_later(ctx: ObjectContext, delta: int) -> None:
    """Schedules ``add(delta)`` on the same key five days from now."""
    ctx.object_send(add, ctx.key()).send(delta, delay=timedelta(days=5))


signup = perdure.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    ctx.set("stage", "waiting for confirmation")
    code = await ctx.promise("confirmation", type_hint=str).value()
    ctx.set("stage", "confirmed")
    return f"{email} confirmed with {code}"


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> None:
    await ctx.promise("confirmation", type_hint=str).resolve(code)


# -- retries -------------------------------------------------------------------------------------

flaky_attempts = itertools.count(1)
flaky = perdure.Service(
    "Flaky",
    retry_policy=RetryPolicy(
        initial_interval=timedelta(hours=1), exponentiation_factor=2, max_interval=timedelta(days=1)
    ),
)


@flaky.handler()
async def twice_broken(ctx: Context) -> int:
    """Fails its first two attempts (retried 1 h, then 2 h later), then answers the attempt."""
    attempt = next(flaky_attempts)
    if attempt <= 2:
        raise RuntimeError(f"attempt {attempt} broke")
    return attempt


# -- an awakeable with a timeout -----------------------------------------------------------------

approvals = perdure.VirtualObject("Approvals")


@approvals.handler()
async def ask(ctx: ObjectContext) -> str:
    """Waits for a decision on an awakeable, at most one hour."""
    awakeable_id, decision = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", awakeable_id)
    timeout = ctx.sleep(timedelta(hours=1))
    first = await perdure.first_completed(decision, timeout)
    return f"decided: {await decision}" if first is decision else "timed out"


# -- non-determinism ------------------------------------------------------------------------------

profiles: dict[str, str] = {}
lookups = perdure.Service(
    "Lookups", retry_policy=RetryPolicy(max_attempts=3, on_max_attempts="kill")
)


@lookups.handler()
async def lookup(ctx: Context, user: str) -> str:
    """BUG on purpose: a process-level cache decides which steps run, so a replay (where the
    cache is warm) skips the journaled "fetch" step."""
    if user not in profiles:
        profiles[user] = await ctx.run("fetch", lambda: f"profile of {user}")
    return await ctx.run("format", profiles[user].upper)
