"""A tiny service written with the official Python SDK (restate-sdk), used by interop tests."""

import restate

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


app = restate.app([greeter])
