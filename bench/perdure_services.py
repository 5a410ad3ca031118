"""The benchmark deployment written with perdure's own SDK: the same services, handlers and answers
as bench/services.py (the official SDK's), so any stack runs every case.

Served the way a user serves it: ``python -m bench.perdure_services PORT`` (``perdure.serve``), or
in one process with the server by ``perdure dev bench.perdure_services``.
"""

from __future__ import annotations

import sys

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext

noop = perdure.Service("BenchNoop")


@noop.handler()
async def echo(ctx: Context, n: int) -> int:
    """The no-op call: one round trip through the server, no journal entries."""
    return n


steps = perdure.Service("BenchSteps")


def _step(n: int, i: int) -> int:
    return n + i


@steps.handler()
async def three(ctx: Context, n: int) -> int:
    """Three durable steps: each is journaled (and acknowledged) before the next starts."""
    a: int = await ctx.run("one", _step, n, 1)
    b: int = await ctx.run("two", _step, a, 2)
    c: int = await ctx.run("three", _step, b, 3)
    return c


chain_c = perdure.Service("BenchChainC")


@chain_c.handler()
async def last(ctx: Context, n: int) -> int:
    return n + 100


chain_b = perdure.Service("BenchChainB")


@chain_b.handler()
async def middle(ctx: Context, n: int) -> int:
    return await ctx.service(last).request(n + 10)


chain_a = perdure.Service("BenchChainA")


@chain_a.handler()
async def first(ctx: Context, n: int) -> int:
    """A -> B -> C: three invocations, two request-response calls between handlers."""
    return await ctx.service(middle).request(n + 1)


counter = perdure.VirtualObject("BenchCounter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    """Exclusive handler: read, write, return; calls on one key run one at a time."""
    value: int = (await ctx.get("count", type_hint=int) or 0) + n
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    value: int = await ctx.get("count", type_hint=int) or 0
    return value


app = perdure.app([noop, steps, chain_a, chain_b, chain_c, counter])

if __name__ == "__main__":
    perdure.serve(app, host="127.0.0.1", port=int(sys.argv[1]))
