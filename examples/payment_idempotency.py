"""Payment with idempotency: the same idempotency key charges once, whoever retries, and every
duplicate gets the first result back.

    curl localhost:8080/Checkout/buy --json '{"order": "o-1", "amount": 30}'
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext


@dataclass
class Purchase:
    order: str
    amount: int


_charge_numbers = itertools.count(1)

ledger = perdure.VirtualObject("Ledger")


@ledger.handler()
async def charge(ctx: ObjectContext, amount: int) -> str:
    charges = (await ctx.get("charges", type_hint=int)) or 0
    ctx.set("charges", charges + 1)
    number = await ctx.run("bank", lambda: next(_charge_numbers))
    return f"charge #{number}: {amount}"


@ledger.handler(kind="shared")
async def charges(ctx: ObjectSharedContext) -> int:
    return (await ctx.get("charges", type_hint=int)) or 0


checkout = perdure.Service("Checkout")


@checkout.handler()
async def buy(ctx: Context, purchase: Purchase) -> list[str]:
    """Charges twice with one key (a retry, say): the ledger sees one charge."""
    key = f"pay-{purchase.order}"
    first = await ctx.object(charge, "main").request(purchase.amount, idempotency_key=key)
    retry = await ctx.object(charge, "main").request(purchase.amount, idempotency_key=key)
    return [first, retry]


app = perdure.app([ledger, checkout])

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
