"""Shopping cart checkout: a virtual object per user holds the cart; checkout charges the total
through a payment service and empties the cart, one request per user at a time.

    curl localhost:8080/Cart/ann/add --json '{"sku": "tea", "price": 4}'
    curl localhost:8080/Cart/ann/checkout
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext, TerminalError


@dataclass
class Line:
    sku: str
    price: int


@dataclass
class Receipt:
    user: str
    total: int
    items: list[str] = field(default_factory=list)


payments = perdure.Service("CartPayments")


@payments.handler()
async def pay(ctx: Context, amount: int) -> str:
    return await ctx.run("charge", lambda: f"paid {amount}")


cart = perdure.VirtualObject("Cart")


@cart.handler()
async def add(ctx: ObjectContext, line: Line) -> int:
    lines = (await ctx.get("lines", type_hint=list[Line])) or []
    lines.append(line)
    ctx.set("lines", lines)
    return len(lines)


@cart.handler(kind="shared")
async def contents(ctx: ObjectSharedContext) -> list[Line]:
    return (await ctx.get("lines", type_hint=list[Line])) or []


@cart.handler()
async def checkout(ctx: ObjectContext) -> Receipt:
    lines = (await ctx.get("lines", type_hint=list[Line])) or []
    if not lines:
        raise TerminalError("the cart is empty", status_code=400)
    total = sum(line.price for line in lines)
    await ctx.service(pay).request(total)
    ctx.clear_all()
    return Receipt(ctx.key(), total, [line.sku for line in lines])


app = perdure.app([payments, cart])

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
