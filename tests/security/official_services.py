"""An official-SDK (restate-sdk) deployment that verifies request identity, for tests/security:
it accepts requests signed by ``$PERDURE_TEST_IDENTITY_KEY`` only."""

import os

import restate

greeter = restate.Service("Greeter")
counter = restate.VirtualObject("Counter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + n
    ctx.set("total", total)
    return total


app = restate.app([greeter, counter], identity_keys=[os.environ["PERDURE_TEST_IDENTITY_KEY"]])
