"""A plain perdure-SDK deployment (no identity keys) for the access tests."""

import perdure

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return f"Hello {name}"


app = perdure.app([greeter])
