"""The benchmark deployment, written with the OFFICIAL Python SDK (restate-sdk) so that perdure's
server and the official server run exactly the same handlers. Served by hypercorn (h2c).

Every handler returns something derived from its input, so the load generator can check that a
200 carries the right answer and not merely some answer.
"""

import restate

noop = restate.Service("BenchNoop")


@noop.handler()
async def echo(ctx: restate.Context, n: int) -> int:
    """The no-op call: one round trip through the server, no journal entries."""
    return n


steps = restate.Service("BenchSteps")


def _step(n: int, i: int) -> int:
    return n + i


@steps.handler()
async def three(ctx: restate.Context, n: int) -> int:
    """Three durable steps: each is journaled (and acknowledged) before the next starts."""
    a = await ctx.run_typed("one", _step, restate.RunOptions(type_hint=int), n, 1)
    b = await ctx.run_typed("two", _step, restate.RunOptions(type_hint=int), a, 2)
    return await ctx.run_typed("three", _step, restate.RunOptions(type_hint=int), b, 3)


chain_c = restate.Service("BenchChainC")


@chain_c.handler()
async def last(ctx: restate.Context, n: int) -> int:
    return n + 100


chain_b = restate.Service("BenchChainB")


@chain_b.handler()
async def middle(ctx: restate.Context, n: int) -> int:
    return await ctx.service_call(last, arg=n + 10)


chain_a = restate.Service("BenchChainA")


@chain_a.handler()
async def first(ctx: restate.Context, n: int) -> int:
    """A -> B -> C: three invocations, two request-response calls between handlers."""
    return await ctx.service_call(middle, arg=n + 1)


counter = restate.VirtualObject("BenchCounter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    """Exclusive handler: read, write, return; calls on one key run one at a time."""
    value = (await ctx.get("count", type_hint=int) or 0) + n
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


app = restate.app([noop, steps, chain_a, chain_b, chain_c, counter])
