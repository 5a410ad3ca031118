"""The services the web UI tests (and docs/ui.md's screenshots) run behind a real perdure server.

hypercorn tests.ui.services:app
"""

from __future__ import annotations

from datetime import timedelta

import perdure
from perdure import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> dict[str, str]:
    """A step, a short durable sleep, and a JSON answer."""
    stamp = await ctx.run("stamp", lambda: f"stamp-{name}")
    await ctx.sleep(timedelta(milliseconds=300))
    return {"greeting": f"Hello, {name}!", "stamp": stamp}


@greeter.handler(journal_retention=timedelta(hours=2))
async def nap(ctx: Context, seconds: int) -> str:
    """Sleeps for a long time: blocked until cancelled."""
    await ctx.sleep(timedelta(seconds=seconds))
    return "rested"


@greeter.handler()
async def fan(ctx: Context, names: list[str]) -> list[dict[str, str]]:
    """Calls greet for each name: a parent with children in the call tree."""
    return [await ctx.service(greet).request(n) for n in names]


@greeter.handler()
async def flaky(ctx: Context, what: str) -> str:
    """Fails every attempt (a retryable error): backing off with a failure and a stack."""
    raise RuntimeError(f"the {what} is broken")


counter = perdure.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = ((await ctx.get("count", type_hint=int)) or 0) + n
    ctx.set("count", total)
    ctx.set("last", {"added": n})
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return (await ctx.get("count", type_hint=int)) or 0


@counter.handler()
async def recount(ctx: ObjectContext) -> int:
    """Calls add on its own key: waits for a call queued behind itself, a deadlock."""
    return await ctx.object(add, ctx.key()).request(1)


signup = perdure.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    """Waits for the confirmation code, then stores it."""
    ctx.set("email", email)
    code: str = await ctx.promise("code", type_hint=str).value()
    ctx.set("confirmed", code)
    return f"{email} confirmed"


@signup.handler()
async def confirm(ctx: WorkflowSharedContext, code: str) -> None:
    await ctx.promise("code", type_hint=str).resolve(code)


app = perdure.app([greeter, counter, signup])
