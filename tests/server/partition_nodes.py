"""Several engines in one process, each with its own SQLite store owning a share of the
partitions, joined by an in-memory ``Transport`` (which can drop, duplicate, delay and replay
deliveries); real perdure-SDK handlers mounted in-process on each."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

import perdure
from perdure import Context, ObjectContext, WorkflowContext
from perdure.protocol import InvocationId, partition_key_of
from perdure.server.engine.driver import Engine
from perdure.server.engine.messages import OutboxMessage, decode_messages, encode_messages
from perdure.server.partitions import PartitionMap
from perdure.server.records import Invocation, Status
from perdure.server.runtime import Runtime

PARTITIONS = PartitionMap(4)


def services() -> perdure.App:
    chain = perdure.VirtualObject("Chain")
    counter = perdure.VirtualObject("Counter")
    waiter = perdure.VirtualObject("Waiter")
    resolver = perdure.VirtualObject("Resolver")
    sleeper = perdure.VirtualObject("Sleeper")
    parent = perdure.VirtualObject("Parent")
    attacher = perdure.VirtualObject("Attacher")
    dup = perdure.VirtualObject("Dup")
    flow = perdure.Workflow("Flow")
    greeter = perdure.Service("Greeter")

    @chain.handler()
    async def hop(ctx: ObjectContext, keys: list[str]) -> list[str]:
        ctx.set("hits", (await ctx.get("hits", type_hint=int) or 0) + 1)
        if not keys:
            return [ctx.key()]
        rest: list[str] = await ctx.object(hop, keys[0]).request(keys[1:])
        greeting: str = await ctx.service(greet).request(ctx.key())  # an unkeyed hop: local
        assert greeting == f"hi {ctx.key()}"
        return [ctx.key(), *rest]

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        return f"hi {name}"

    @counter.handler()
    async def add(ctx: ObjectContext, delta: int) -> int:
        total = (await ctx.get("total", type_hint=int) or 0) + delta
        ctx.set("total", total)
        return total

    @waiter.handler()
    async def wait(ctx: ObjectContext, resolver_key: str) -> str:
        awakeable_id, future = ctx.awakeable(type_hint=str)
        ctx.object_send(resolve, resolver_key).send(awakeable_id)
        value: str = await future
        return value

    @resolver.handler()
    async def resolve(ctx: ObjectContext, awakeable_id: str) -> None:
        ctx.resolve_awakeable(awakeable_id, f"resolved by {ctx.key()}")

    @sleeper.handler()
    async def nap(ctx: ObjectContext, ms: int) -> str:
        await ctx.sleep(timedelta(milliseconds=ms))
        return f"slept {ctx.key()}"

    @parent.handler()
    async def call_sleeper(ctx: ObjectContext, sleeper_key: str) -> str:
        result: str = await ctx.object(nap, sleeper_key).request(600_000)
        return result

    @attacher.handler()
    async def attach(ctx: ObjectContext, invocation_id: str) -> list[Any]:
        early = await ctx.invocation_output(invocation_id, output=str)
        attached = await ctx.attach_invocation(invocation_id, output=str)
        return [early, attached]

    @dup.handler()
    async def twice(ctx: ObjectContext, counter_key: str) -> list[Any]:
        first = await ctx.object(add, counter_key).request(1, idempotency_key="once")
        second = await ctx.object(add, counter_key).request(1, idempotency_key="once")
        run = await ctx.workflow(flow_run, counter_key).request("a")
        try:
            again = await ctx.workflow(flow_run, counter_key).request("b")
        except perdure.TerminalError as exc:
            again = f"{exc.status_code} {exc.message}"
        return [first, second, run, again]

    @flow.main()
    async def flow_run(ctx: WorkflowContext, tag: str) -> str:
        runs = (await ctx.get("runs", type_hint=int) or 0) + 1
        ctx.set("runs", runs)
        return f"run {tag} #{runs}"

    return perdure.app([chain, counter, waiter, resolver, sleeper, parent, attacher, dup, flow,
                        greeter])  # fmt: skip


class MemoryTransport:
    """Delivers to the engine owning the target partition, through the bytes form. With
    ``chaos`` it drops deliveries before or after they are applied, applies some twice, delays
    them and replays stale ones (what an unreliable network and retries can do)."""

    def __init__(self) -> None:
        self.owners: dict[int, Engine] = {}
        self.chaos: random.Random | None = None
        self.blocked: set[int] = set()
        self.history: list[tuple[int, int, bytes]] = []
        self.delivered = 0
        self.lose_answers = False

    async def deliver(self, target_partition: int, messages: list[OutboxMessage]) -> None:
        engine = self.owners.get(target_partition)
        if engine is None or target_partition in self.blocked:
            raise ConnectionError(f"partition {target_partition} is unreachable")
        source = messages[0].source
        data = encode_messages(messages)
        rng = self.chaos
        if rng is not None:
            if rng.random() < 0.2:
                raise ConnectionError("dropped on the way")
            if self.history and rng.random() < 0.3:  # a stale delivery arrives late
                old_target, old_source, old = rng.choice(self.history)
                stale = self.owners.get(old_target)
                if stale is not None:
                    await stale.accept(old_source, decode_messages(old))
            await asyncio.sleep(rng.random() * 0.005)
        await engine.accept(source, decode_messages(data))
        self.history.append((target_partition, source, data))
        self.delivered += len(messages)
        if rng is not None:
            if rng.random() < 0.3:  # delivered twice
                await engine.accept(source, decode_messages(data))
            if rng.random() < 0.2:
                raise ConnectionError("the answer was lost")
        if self.lose_answers:
            raise ConnectionError("the answer was lost")


class Node:
    """One engine (a Runtime) owning ``owned`` partitions, with its store at ``path``."""

    def __init__(
        self,
        path: Path,
        owned: Iterable[int],
        transport: MemoryTransport,
        synchronous: str = "OFF",
    ) -> None:
        self.synchronous = synchronous
        self.path = path
        self.owned = frozenset(owned)
        self.transport = transport
        self.runtime: Runtime | None = None

    async def start(self) -> None:
        runtime = Runtime(self.path, partitions=PARTITIONS.count, owned=self.owned,
                          transport=self.transport, synchronous=self.synchronous)  # fmt: skip
        self.runtime = runtime
        await runtime.mount("app", services())
        runtime.start()
        for p in self.owned:
            self.transport.owners[p] = runtime.engine

    async def stop(self) -> None:
        for p in self.owned:
            self.transport.owners.pop(p, None)
        if self.runtime is not None:
            await self.runtime.stop(1.0)
            self.runtime = None

    @property
    def engine(self) -> Engine:
        assert self.runtime is not None
        return self.runtime.engine

    def owns_key(self, key: str) -> bool:
        return PARTITIONS.partition_of(partition_key_of(key)) in self.owned

    def key(self, prefix: str) -> str:
        """An object key of a partition this node owns."""
        return next(f"{prefix}{n}" for n in range(10_000) if self.owns_key(f"{prefix}{n}"))

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        assert self.runtime is not None
        transport = httpx.ASGITransport(app=self.runtime.ingress)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
            return await client.post(path, json=body, headers=headers, timeout=30)

    async def admin(self, method: str, path: str) -> httpx.Response:
        assert self.runtime is not None
        transport = httpx.ASGITransport(app=self.runtime.admin)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as client:
            return await client.request(method, path, timeout=30)

    def state(self, service: str, key: str) -> dict[str, bytes]:
        return {k.decode(): v for k, v in self.engine.state(service, key)}

    def invocation(self, invocation_id: InvocationId | str) -> Invocation | None:
        if isinstance(invocation_id, str):
            invocation_id = InvocationId.parse(invocation_id)
        return self.engine.invocation(invocation_id)

    def invocations_of(self, service: str) -> list[Invocation]:
        return [inv for inv in self.engine.invocations(10_000) if inv.service == service]


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.02)


def completed(node: Node, service: str, count: int = 1) -> Callable[[], bool]:
    def check() -> bool:
        done = [i for i in node.invocations_of(service) if i.status is Status.COMPLETED]
        return len(done) >= count

    return check
