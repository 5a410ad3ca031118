"""Services written with perdure's own SDK, the targets of the client's typed handler references
(``client.service(greet).request("Ann")``). Served with hypercorn; names differ from the
official-SDK services (tests/client/official_services.py) because both are registered with the
same server in one test session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import msgspec
import pydantic

import perdure
from perdure import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    TerminalError,
    WorkflowContext,
    WorkflowSharedContext,
)


@dataclass
class Order:
    id: str
    amount: int


class Receipt(pydantic.BaseModel):
    order_id: str
    total: int


class Point(msgspec.Struct):
    x: int
    y: int


# -- a stateless service ------------------------------------------------------------------------

greeter = perdure.Service("TypedGreeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def checkout(ctx: Context, order: Order) -> Receipt:
    return Receipt(order_id=order.id, total=order.amount * 2)


@greeter.handler()
async def flip(ctx: Context, point: Point) -> Point:
    return Point(x=point.y, y=point.x)


@greeter.handler()
async def stamp(ctx: Context, name: str) -> Order:
    """A fresh nonce per execution: the same answer twice means one execution."""
    nonce = await ctx.run("nonce", lambda: uuid.uuid4().hex)
    return Order(id=f"{name}:{nonce}", amount=len(name))


@greeter.handler()
async def reverse(ctx: Context, data: bytes) -> bytes:
    return data[::-1]


@greeter.handler()
async def refuse(ctx: Context, reason: str) -> str:
    raise TerminalError(reason, status_code=422, metadata={"field": "reason"})


# -- a virtual object ---------------------------------------------------------------------------

counter = perdure.VirtualObject("TypedCounter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = (await ctx.get("count", type_hint=int) or 0) + n
    ctx.set("count", total)
    return total


@counter.handler(kind="shared")
async def current(ctx: ObjectSharedContext) -> int:
    return await ctx.get("count", type_hint=int) or 0


# -- a workflow ---------------------------------------------------------------------------------

signup = perdure.Workflow("TypedSignup")


@signup.main()
async def run(ctx: WorkflowContext, name: str) -> Receipt:
    approver = await ctx.promise("approval", type_hint=str).value()
    return Receipt(order_id=f"{name}/{approver}", total=len(approver))


@signup.handler()
async def approve(ctx: WorkflowSharedContext, approver: str) -> bool:
    await ctx.promise("approval", type_hint=str).resolve(approver)
    return True


app = perdure.app([greeter, counter, signup])
