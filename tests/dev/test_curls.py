"""The curl lines ``perdure dev`` prints: a URL per handler (KEY for keyed services) and an
example body that fits the handler's input schema."""

from __future__ import annotations

import enum
import json
import shlex
from dataclasses import dataclass
from typing import Any, Literal

import pydantic

import perdure
from perdure import Context, ObjectContext, WorkflowContext
from perdure.dev.curls import curl_lines, example_value
from perdure.sdk.serde import json_schema_of

INGRESS = "http://127.0.0.1:8080"


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Order:
    item: str
    count: int
    price: float
    gift: bool
    tags: list[str]
    color: Color
    note: str | None = None


class Address(pydantic.BaseModel):
    street: str
    zip: int


class Customer(pydantic.BaseModel):
    name: str
    address: Address
    kind: Literal["new", "old"]


def test_example_bodies_fit_their_schemas() -> None:
    order = example_value(json_schema_of(Order))
    assert order == {
        "item": "item",
        "count": 1,
        "price": 1,
        "gift": True,
        "tags": ["tags"],
        "color": "red",
        "note": "note",
    }
    customer = example_value(Customer.model_json_schema())
    assert customer == {"name": "name", "address": {"street": "street", "zip": 1}, "kind": "new"}
    Customer.model_validate(customer)  # the example is valid input
    assert example_value(json_schema_of(dict[str, int])) == {"key": 1}
    assert example_value(json_schema_of(tuple[int, str])) == [1, "text"]
    assert example_value(json_schema_of(int | None)) == 1


def test_a_curl_line_per_reachable_handler() -> None:
    svc = perdure.Service("Shop")
    cart = perdure.VirtualObject("Cart")
    flow = perdure.Workflow("Signup")
    hidden = perdure.Service("Internal", ingress_private=True)

    @svc.handler()
    async def buy(ctx: Context, order: Order) -> str:
        return ""

    @svc.handler()
    async def ping(ctx: Context) -> None:
        return None

    @svc.handler()
    async def anything(ctx: Context, value: Any) -> None:
        return None

    @svc.handler()
    async def upload(ctx: Context, data: bytes) -> None:
        return None

    @svc.handler(ingress_private=True)
    async def secret(ctx: Context) -> None:
        return None

    @cart.handler()
    async def add(ctx: ObjectContext, sku: str) -> None:
        return None

    @flow.main()
    async def run(ctx: WorkflowContext, email: str) -> None:
        return None

    @hidden.handler()
    async def internal(ctx: Context) -> None:
        return None

    lines = curl_lines(perdure.app([svc, cart, flow, hidden]), INGRESS)
    body = json.dumps(example_value(json_schema_of(Order)), separators=(", ", ": "))
    assert lines == [
        f"curl {INGRESS}/Shop/buy --json {shlex.quote(body)}",
        f"curl {INGRESS}/Shop/ping",
        f"curl {INGRESS}/Shop/anything",
        f"curl {INGRESS}/Shop/upload -H 'content-type: application/octet-stream' "
        "--data-binary 'bytes'",
        f"curl {INGRESS}/Cart/KEY/add --json '\"text\"'",
        f"curl {INGRESS}/Signup/KEY/run --json '\"text\"'",
    ]
