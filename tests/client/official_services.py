"""Services written with the OFFICIAL Python SDK (restate-sdk), the targets of the client's
interop tests. Served with hypercorn (tests.support.official.serve_asgi)."""

from __future__ import annotations

import uuid
from typing import Any

import restate
from restate.exceptions import TerminalError
from restate.serde import BytesSerde

# -- a stateless service ------------------------------------------------------------------------

greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def stamp(ctx: restate.Context, name: str) -> dict[str, str]:
    """A fresh nonce per execution: the same answer twice means one execution."""
    nonce = await ctx.run_typed("nonce", lambda: uuid.uuid4().hex)
    return {"name": name, "nonce": nonce}


@greeter.handler()
async def order(ctx: restate.Context, order: dict[str, Any]) -> dict[str, Any]:
    lines = order["lines"]
    return {"id": order["id"], "lines": lines, "total": sum(line["count"] for line in lines)}


@greeter.handler()
async def headers(ctx: restate.Context) -> dict[str, str]:
    return {k: v for k, v in ctx.request().headers.items() if k.startswith("x-")}


@greeter.handler()
async def fail(ctx: restate.Context, code: int) -> str:
    raise TerminalError(f"failed with {code}", status_code=code, metadata={"reason": "asked"})


@greeter.handler(
    accept="application/octet-stream",
    content_type="application/octet-stream",
    input_serde=BytesSerde(),
    output_serde=BytesSerde(),
)
async def reverse(ctx: restate.Context, data: bytes) -> bytes:
    return data[::-1]


# -- a virtual object: counts executions in its state -------------------------------------------

counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    total = (await ctx.get("count", type_hint=int) or 0) + n
    ctx.set("count", total)
    return total


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


# -- a virtual object that waits on an awakeable until the test completes it --------------------

latch = restate.VirtualObject("Latch")


@latch.handler()
async def wait(ctx: restate.ObjectContext, label: str) -> str:
    awakeable_id, value = ctx.awakeable(type_hint=str)
    ctx.set("awakeable", awakeable_id)
    try:
        return f"{label}: {await value}"
    finally:
        ctx.clear("awakeable")


@latch.handler(kind="shared")
async def awakeable(ctx: restate.ObjectSharedContext) -> str | None:
    return await ctx.get("awakeable", type_hint=str)


# -- a workflow: run waits for approval through a durable promise -------------------------------

signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, name: str) -> str:
    ctx.set("status", "waiting")
    approver = await ctx.promise("approval", type_hint=str).value()
    ctx.set("status", "approved")
    return f"{name} approved by {approver}"


@signup.handler()
async def approve(ctx: restate.WorkflowSharedContext, approver: str) -> str:
    await ctx.promise("approval", type_hint=str).resolve(approver)
    return "ok"


@signup.handler()
async def status(ctx: restate.WorkflowSharedContext) -> str | None:
    return await ctx.get("status", type_hint=str)


app = restate.app([greeter, counter, latch, signup])
