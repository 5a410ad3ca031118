"""Order workflow with compensation: reserve stock, charge the card, ship; if a step fails for
good, undo the steps that succeeded (in reverse order) and fail the order.

    python examples/order_workflow.py          # serves on :9080 (PORT to change)
    restate deployments register http://localhost:9080
    curl localhost:8080/OrderProcess/o-1/run --json '{"item": "book", "card": "ok"}'
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import perdure
from perdure import TerminalError, WorkflowContext, WorkflowSharedContext


@dataclass
class Order:
    item: str
    card: str


orders = perdure.Workflow("OrderProcess")


def reserve(item: str) -> str:
    return f"reservation-{item}"


def charge(card: str) -> str:
    if card == "declined":
        raise TerminalError("card declined", status_code=402)
    return f"payment-{card}"


@orders.main()
async def run(ctx: WorkflowContext, order: Order) -> str:
    compensations: list[Callable[[], Awaitable[object]]] = []
    try:
        reservation = await ctx.run("reserve", reserve, order.item)
        compensations.append(lambda: ctx.run("release", lambda: f"released {reservation}"))
        ctx.set("status", "reserved")
        payment = await ctx.run("charge", charge, order.card)
        compensations.append(lambda: ctx.run("refund", lambda: f"refunded {payment}"))
        ctx.set("status", "charged")
        tracking = await ctx.run("ship", lambda: f"tracking-{ctx.key()}")
    except TerminalError:
        for undo in reversed(compensations):
            await undo()
        ctx.set("status", "compensated")
        raise
    ctx.set("status", "shipped")
    return tracking


@orders.handler()
async def status(ctx: WorkflowSharedContext) -> str | None:
    return await ctx.get("status", type_hint=str)


app = perdure.app([orders])

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
