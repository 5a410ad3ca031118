"""Every example service in one deployment: what `scripts/demo` serves on perdure's server.

python examples/all_services.py     # serves on :9080 (PORT to change)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the examples are plain scripts

import fan_out
import order_workflow
import payment_idempotency
import reminder
import shopping_cart

import perdure

app = perdure.app(
    [
        order_workflow.orders,
        shopping_cart.payments,
        shopping_cart.cart,
        payment_idempotency.ledger,
        payment_idempotency.checkout,
        reminder.inbox,
        reminder.reminders,
        fan_out.sensor,
        fan_out.broadcast,
    ]
)

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
