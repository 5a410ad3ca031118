"""perdure-SDK services the CLI tests manage: each handler puts an invocation into one state
(completed, suspended on an awakeable, sleeping, backing off, paused, queued behind a lock)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext, WorkflowContext

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def slow(ctx: Context, seconds: float) -> str:
    """Runs (an attempt in flight) for ``seconds``: the invocation shows as running."""
    await ctx.run("nap", lambda: asyncio.sleep(seconds))
    return "rested"


@greeter.handler()
async def relay(ctx: Context, key: str) -> str:
    """Calls Counter/<key>/wait and waits for it: a journal with a Call entry."""
    result: str = await ctx.object(wait, key).request()
    return result


@greeter.handler()
async def refuse(ctx: Context, reason: str) -> str:
    """Fails terminally with the code 422 and ``reason``."""
    raise perdure.TerminalError(reason, status_code=422)


@greeter.handler()
async def card(ctx: Context, name: str) -> dict[str, object]:
    """A JSON object: the CLI pretty-prints it on a terminal."""
    return {"name": name, "letters": len(name)}


@greeter.handler()
async def whoami(ctx: Context) -> str:
    """The ``x-who`` header the caller sent."""
    return ctx.request().headers.get("x-who", "nobody")


counter = perdure.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total: int = (await ctx.get("total")) or 0
    total += n
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    total: int = (await ctx.get("total")) or 0
    return total


@counter.handler()
async def wait(ctx: ObjectContext) -> str:
    """Holds the key's lock, suspended on an awakeable nobody resolves."""
    _, future = ctx.awakeable()
    result: str = await future
    return result


@counter.handler(inactivity_timeout=timedelta(milliseconds=200))
async def park(ctx: ObjectContext) -> str:
    """Like ``wait``, but the server makes it suspend soon: the invocation shows as suspended."""
    _, future = ctx.awakeable()
    result: str = await future
    return result


@counter.handler()
async def nap(ctx: ObjectContext, seconds: int) -> str:
    await ctx.sleep(timedelta(seconds=seconds))
    return "woke"


flaky = perdure.Service(
    "Flaky",
    retry_policy=perdure.RetryPolicy(initial_interval=timedelta(seconds=30), max_attempts=100),
)


@flaky.handler()
async def fail(ctx: Context) -> None:
    raise RuntimeError("flaky by design")


pauser = perdure.Service(
    "Pauser",
    retry_policy=perdure.RetryPolicy(
        initial_interval=timedelta(milliseconds=10), max_attempts=1, on_max_attempts="pause"
    ),
)


@pauser.handler("fail")
async def pauser_fail(ctx: Context) -> None:
    raise RuntimeError("pauses after one attempt")


signup = perdure.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    ctx.set("email", email)
    return f"signed up {email}"


app = perdure.app([greeter, counter, flaky, pauser, signup])
