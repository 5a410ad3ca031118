"""A plain perdure-SDK deployment (no identity keys) for the access tests."""

import perdure

greeter = perdure.Service("Greeter")


@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def headers(ctx: perdure.Context) -> list[str]:
    return sorted(ctx.request().headers)


app = perdure.app([greeter])
