"""perdure-SDK services used by the scenario tests: one handler per behaviour users rely on.

Served with hypercorn as ``tests.scenarios.services:app`` behind each server under test.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass
from datetime import timedelta

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


# -- targets ------------------------------------------------------------------------------------

greeter = perdure.Service("Greeter")


@greeter.handler("Greet")
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def slow_echo(ctx: Context, value: str) -> str:
    await ctx.sleep(timedelta(milliseconds=800))
    return value


@greeter.handler()
async def fail(ctx: Context, code: int) -> str:
    raise TerminalError(f"failed with {code}", status_code=code, metadata={"why": "asked"})


@greeter.handler("send")
async def send_named(ctx: Context, text: str) -> str:
    """A handler named like the ingress's /send suffix."""
    return f"sent {text}"


@greeter.handler()
async def raw(ctx: Context, data: bytes) -> bytes:
    return data[::-1]


@greeter.handler()
async def checkout(ctx: Context, order: Order) -> Receipt:
    return Receipt(order_id=order.id, total=order.amount * 2)


@greeter.handler()
async def flip(ctx: Context, p: Point) -> Point:
    return Point(x=p.y, y=p.x)


counter = perdure.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    value = (await ctx.get("count", type_hint=int)) or 0
    ctx.set("count", value + delta)
    return value + delta


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> int:
    return (await ctx.get("count", type_hint=int)) or 0


@counter.handler()
async def append(ctx: ObjectContext, item: int) -> list[int]:
    items: list[int] = (await ctx.get("items", type_hint=list[int])) or []
    await ctx.sleep(timedelta(milliseconds=20))
    items.append(item)
    ctx.set("items", items)
    return items


@counter.handler(kind="shared")
async def items(ctx: ObjectSharedContext) -> list[int]:
    return (await ctx.get("items", type_hint=list[int])) or []


@counter.handler()
async def state_ops(ctx: ObjectContext) -> dict[str, object]:
    ctx.set("a", 1)
    ctx.set("b", {"nested": [1, 2]})
    ctx.set("c", Order("o1", 5))
    before = await ctx.state_keys()
    order = await ctx.get("c", type_hint=Order)
    ctx.clear("a")
    after_clear = await ctx.state_keys()
    missing = await ctx.get("a")
    ctx.clear_all()
    after_all = await ctx.state_keys()
    return {
        "key": ctx.key(),
        "before": before,
        "order": [order.id, order.amount],
        "after_clear": after_clear,
        "missing": missing,
        "after_all": after_all,
    }


# -- orders workflow -----------------------------------------------------------------------------

orders = perdure.Workflow("OrderWorkflow")


@orders.main()
async def run(ctx: WorkflowContext, order: Order) -> Receipt:
    ctx.set("status", "waiting")
    approval = await ctx.promise("approval", type_hint=str).value()
    ctx.set("status", approval)
    return Receipt(order_id=order.id, total=order.amount)


@orders.handler()
async def approve(ctx: WorkflowSharedContext, decision: str) -> str:
    promise = ctx.promise("approval", type_hint=str)
    try:
        await promise.resolve(decision)
    except TerminalError as exc:
        return f"already completed ({exc.status_code})"
    return "resolved"


@orders.handler()
async def peek(ctx: WorkflowSharedContext) -> str | None:
    return await ctx.promise("approval", type_hint=str).peek()


@orders.handler()
async def status(ctx: WorkflowSharedContext) -> str | None:
    return await ctx.get("status", type_hint=str)


# -- the caller: every ctx operation -----------------------------------------------------------

caller = perdure.Service("Caller")
RUN_ATTEMPTS: collections.Counter[str] = collections.Counter()


@caller.handler()
async def calls(ctx: Context, key: str) -> list[object]:
    by_name = await ctx.service("Greeter", "Greet").request("Ann")
    by_ref = await ctx.service(greet).request("Bob")
    obj_name = await ctx.object("Counter", key, "add").request(1)
    obj_ref = await ctx.object(add, key).request(2)
    shared = await ctx.object(get, key).request()
    call = ctx.service(checkout).request(Order("o7", 21))
    receipt = await call
    typed = await ctx.service("Greeter", "checkout", output=Receipt).request(Order("o8", 1))
    flipped = await ctx.service(flip).request(Point(x=1, y=2))
    raw_out = await ctx.service(raw).request(b"abc")
    wf = await ctx.workflow("OrderWorkflow", key, "status").request()
    return [
        by_name,
        by_ref,
        obj_name,
        obj_ref,
        shared,
        receipt.total,
        typed.total,
        (await call.invocation_id())[:5],
        [flipped.x, flipped.y],
        raw_out.decode(),
        wf,
    ]


@caller.handler()
async def workflow_by_ref(ctx: Context, key: str) -> list[object]:
    handle = ctx.workflow_send(run, key).send(Order(key, 9))
    wf_id = await handle.invocation_id()
    await ctx.sleep(timedelta(milliseconds=200))
    answer = await ctx.workflow(approve, key).request("yes")
    again = await ctx.workflow("OrderWorkflow", key, "approve").request("no")
    receipt = await ctx.workflow_invocation("OrderWorkflow", key, output=Receipt)
    attached = await ctx.attach_invocation(wf_id, output=Receipt)
    return [answer, again, receipt.total, attached.order_id]


@caller.handler()
async def sends(ctx: Context, key: str) -> str:
    ctx.object_send(add, key).send(10)
    ctx.object_send("Counter", key, "add").send(5)
    handle = ctx.object_send(add, key).send(100, delay=timedelta(seconds=2))
    return await handle.invocation_id()


@caller.handler()
async def idempotent(ctx: Context, key: str) -> list[int]:
    first = await ctx.object(add, key).request(1, idempotency_key=f"{key}-call")
    second = await ctx.object(add, key).request(1, idempotency_key=f"{key}-call")
    ctx.object_send(add, key).send(1000, idempotency_key=f"{key}-send")
    ctx.object_send(add, key).send(1000, idempotency_key=f"{key}-send")
    return [first, second]


@caller.handler()
async def attach(ctx: Context, key: str) -> list[object]:
    handle = ctx.service_send(slow_echo).send(key, idempotency_key=key)
    target = await handle.invocation_id()
    early = await ctx.invocation_output(target, output=str)
    by_id = await ctx.attach_invocation(target, output=str)
    by_key = await ctx.service_invocation_by_idempotency_key(
        "Greeter", "slow_echo", key, output=str
    )
    later = await ctx.invocation_output(target)
    obj = await ctx.object(add, key).request(7, idempotency_key="obj-idem")
    obj_attached = await ctx.object_invocation_by_idempotency_key(
        "Counter", key, "add", "obj-idem", output=int
    )
    return [early, by_id, by_key, later, obj, obj_attached]


@caller.handler()
async def errors(ctx: Context, code: int) -> list[object]:
    try:
        await ctx.service(fail).request(code)
    except TerminalError as exc:
        return [exc.status_code, exc.message, exc.metadata]
    return ["no error"]


@caller.handler()
async def steps(ctx: Context, key: str) -> list[object]:
    def flaky() -> int:
        RUN_ATTEMPTS[key] += 1
        if RUN_ATTEMPTS[key] < 3:
            raise RuntimeError(f"flaky attempt {RUN_ATTEMPTS[key]}")
        return RUN_ATTEMPTS[key]

    async def always_fails() -> None:
        RUN_ATTEMPTS[key + "-fail"] += 1
        raise ValueError("broken for good")

    attempts = await ctx.run("flaky", flaky, max_attempts=10)
    try:
        await ctx.run(
            "doomed",
            always_fails,
            max_attempts=2,
            initial_retry_interval=timedelta(milliseconds=10),
        )
        outcome = "no error"
    except TerminalError as exc:
        outcome = f"{exc.status_code}: {exc.message}"
    order = await ctx.run("typed", lambda: Order("r1", 3), type_hint=Order)
    u = ctx.uuid()
    n = ctx.random().randint(0, 10**9)
    journaled = await ctx.run("remember", lambda: [str(u), n])
    await ctx.sleep(timedelta(milliseconds=300))
    return [
        attempts,
        outcome,
        RUN_ATTEMPTS[key + "-fail"],
        order.amount,
        journaled == [str(u), n],
        ctx.request().id[:5],
        ctx.request().headers.get("x-test"),
    ]


@caller.handler()
async def combinators(ctx: Context, key: str) -> list[object]:
    async def value(v: str) -> str:
        await asyncio.sleep(0.01)
        return v

    gathered = await perdure.gather(
        ctx.run("a", value, "a"), ctx.sleep(timedelta(milliseconds=100)), ctx.run("b", value, "b")
    )
    long_sleep = ctx.sleep(timedelta(days=1))
    fast = ctx.run("fast", value, "fast")
    first = await perdure.first_completed(long_sleep, fast)
    winner = await first
    failing = ctx.service(fail).request(418)
    anything = await perdure.any(failing, ctx.service(greet).request("any"))
    try:
        await perdure.all(ctx.service(fail).request(419), ctx.sleep(timedelta(days=1)))
        all_error: object = None
    except TerminalError as exc:
        all_error = exc.status_code
    order = []
    async for done in perdure.as_completed(
        ctx.sleep(timedelta(milliseconds=600)),
        ctx.service(greet).request("x"),
        ctx.sleep(timedelta(milliseconds=200)),
    ):
        order.append(await done)
    return [gathered, winner, anything, all_error, order]


@caller.handler()
async def awakeables(ctx: Context, key: str) -> list[object]:
    awakeable_id, future = ctx.awakeable(type_hint=int)
    ctx.object_send(store_awakeable, key).send(awakeable_id)
    external = await future
    inner_id, inner = ctx.awakeable(type_hint=str)
    ctx.resolve_awakeable(inner_id, "from ctx")
    resolved = await inner
    rejected_id, rejected = ctx.awakeable()
    ctx.reject_awakeable(rejected_id, "no way", code=422)
    try:
        await rejected
        rejection: object = None
    except TerminalError as exc:
        rejection = [exc.status_code, exc.message]
    return [external, resolved, rejection]


@caller.handler()
async def cancel(ctx: Context, invocation_id: str) -> None:
    ctx.cancel_invocation(invocation_id)


@caller.handler()
async def send_then_cancel(ctx: Context, key: str) -> str:
    """Send Saga/<key>/book one-way, let it start, then cancel it through the send handle."""
    handle = ctx.object_send(book, key).send()
    await ctx.sleep(timedelta(seconds=1))
    await handle.cancel()
    return await handle.invocation_id()


@caller.handler()
async def output_of_failed(ctx: Context, code: int) -> list[object]:
    """Peek at the output of a target that failed terminally: the peek raises its error."""
    target = await ctx.service_send(fail).send(code).invocation_id()
    with contextlib.suppress(TerminalError):
        await ctx.attach_invocation(target, output=str)
    try:
        await ctx.invocation_output(target, output=str)
    except TerminalError as exc:
        return [exc.status_code, exc.message]
    return ["no error"]


# -- cancellation with compensation ------------------------------------------------------------

saga = perdure.VirtualObject("Saga")


@saga.handler()
async def book(ctx: ObjectContext) -> str:
    ctx.set("status", "booked")
    _, never = ctx.awakeable()
    try:
        await never
    except TerminalError as exc:
        ctx.set("status", f"compensated after {exc.status_code}")
        raise
    return "not cancelled"


@saga.handler(kind="shared")
async def saga_status(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("status", type_hint=str)


@saga.handler()
async def store_awakeable(ctx: ObjectContext, awakeable_id: str) -> None:
    ctx.set("awakeable", awakeable_id)


@saga.handler(kind="shared")
async def awakeable_of(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("awakeable", type_hint=str)


saga_parent = perdure.VirtualObject("SagaParent")


@saga_parent.handler()
async def wait_for_booking(ctx: ObjectContext) -> str:
    """Await a Saga/<same key>/book call; cancelling this invocation cancels that child too."""
    call = ctx.object(book, ctx.key()).request()
    ctx.set("child", await call.invocation_id())
    try:
        return await call
    except TerminalError as exc:
        ctx.set("status", f"parent saw {exc.status_code}")
        raise


@saga_parent.handler(kind="shared")
async def parent_state(ctx: ObjectSharedContext, name: str) -> str | None:
    return await ctx.get(name, type_hint=str)


# -- replay check: counts handler starts in this process ----------------------------------------

probe = perdure.Service("Probe")
STARTS: collections.Counter[str] = collections.Counter()


@probe.handler()
async def starts(ctx: Context, key: str) -> int:
    STARTS[key] += 1
    await ctx.sleep(timedelta(milliseconds=10))
    await ctx.sleep(timedelta(milliseconds=10))
    return STARTS[key]


# -- options, as the server reports them ----------------------------------------------------------

configured = perdure.Service(
    "Configured",
    description="a configured service",
    inactivity_timeout=timedelta(seconds=90),
    abort_timeout=timedelta(minutes=5),
    idempotency_retention=timedelta(hours=2),
    journal_retention=timedelta(hours=3),
    retry_policy=perdure.RetryPolicy(
        initial_interval=timedelta(milliseconds=250),
        exponentiation_factor=3.0,
        max_interval=timedelta(seconds=20),
        max_attempts=7,
        on_max_attempts="kill",
    ),
)


@configured.handler(ingress_private=True, inactivity_timeout=timedelta(seconds=45))
async def hidden(ctx: Context) -> str:
    """Only other handlers may call this one."""
    return "hidden"


# -- a request-response cycle between two exclusive handlers (deadlocks) -----------------------

cycle_a = perdure.VirtualObject("CycleA")
cycle_b = perdure.VirtualObject("CycleB")


@cycle_a.handler()
async def enter(ctx: ObjectContext, hops: int) -> str:
    """With hops > 0: call CycleB/<same key>/relay, which calls back into this (locked) key."""
    if hops <= 0:
        return "end"
    call = ctx.object("CycleB", ctx.key(), "relay").request(hops - 1)
    ctx.set("callee", await call.invocation_id())
    return str(await call)


@cycle_a.handler(kind="shared")
async def callee(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("callee", type_hint=str)


@cycle_b.handler()
async def relay(ctx: ObjectContext, hops: int) -> str:
    return str(await ctx.object("CycleA", ctx.key(), "enter").request(hops))


app = perdure.app(
    [greeter, counter, orders, caller, saga, saga_parent, probe, configured, cycle_a, cycle_b]
)
