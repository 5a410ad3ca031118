"""A perdure-SDK deployment that verifies request identity, for tests/security.

The accepted key comes from ``$PERDURE_TEST_IDENTITY_KEY`` (publickeyv1_...); every handler run
appends a line to ``$PERDURE_TEST_RUNS`` so that a test can tell whether anything ran.
"""

import os

import perdure

greeter = perdure.Service("Greeter")
counter = perdure.VirtualObject("Counter")


def _ran(what: str) -> None:
    with open(os.environ["PERDURE_TEST_RUNS"], "a") as runs:
        runs.write(what + "\n")


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    _ran(f"greet {name}")
    return f"Hello {name}"


@counter.handler()
async def add(ctx: perdure.ObjectContext, n: int) -> int:
    _ran(f"add {ctx.key()} {n}")
    total = (await ctx.get("total", type_hint=int) or 0) + n
    ctx.set("total", total)
    return total


app = perdure.app([greeter, counter], identity_keys=[os.environ["PERDURE_TEST_IDENTITY_KEY"]])
