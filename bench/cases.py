"""The benchmark cases: what one request of each case does against the ingress, how its answer is
checked, and (where the server keeps countable state) how the run is verified afterwards.

The handlers live in bench/services.py. ``tag`` is unique per run, so object keys and idempotency
keys of one run never collide with those of an earlier run (warm-up included) on the same server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from bench.loadgen import Answer, CheckFailed, Client, Issue, LoadResult

# Post-run check: (ingress client, tag, result) -> a problem description, or None when consistent.
Verify = Callable[[httpx.AsyncClient, str, LoadResult], Awaitable[str | None]]

MANY_KEYS = 1024  # key space of the many-keys case: contention on one key is rare


def _expect_int(resp: Answer, want: int, status: int = 200) -> None:
    if resp.status_code != status:
        raise CheckFailed(f"HTTP {resp.status_code}: {resp.text[:80]}")
    got = resp.json()
    if got != want:
        raise CheckFailed(f"wrong answer: got {got!r}, want {want!r}")


def _call(path_of: Callable[[int], str], answer: Callable[[int], int]) -> Callable[[str], Issue]:
    """A request-response call whose answer is a function of the request number."""

    def make(tag: str) -> Issue:
        async def issue(client: Client, i: int) -> None:
            _expect_int(await client.post(path_of(i), json=i), answer(i))

        return issue

    return make


def _hot_key(tag: str) -> Issue:
    async def issue(client: Client, i: int) -> None:
        resp = await client.post(f"/BenchCounter/{tag}-hot/add", json=1)
        if resp.status_code != 200:
            raise CheckFailed(f"HTTP {resp.status_code}: {resp.text[:80]}")

    return issue


def _many_keys(tag: str) -> Issue:
    async def issue(client: Client, i: int) -> None:
        resp = await client.post(f"/BenchCounter/{tag}-k{i % MANY_KEYS}/add", json=1)
        if resp.status_code != 200:
            raise CheckFailed(f"HTTP {resp.status_code}: {resp.text[:80]}")

    return issue


async def _counted(client: httpx.AsyncClient, keys: list[str], result: LoadResult) -> str | None:
    """Every successful add must be in the counters, and (when nothing failed) nothing more."""
    limit = asyncio.Semaphore(16)

    async def count(key: str) -> int:
        async with limit:
            resp = await client.get(f"/BenchCounter/{key}/get")
            resp.raise_for_status()
            value: int = resp.json()
            return value

    total = sum(await asyncio.gather(*(count(k) for k in keys)))
    if total < result.ok or (result.failed == 0 and total != result.ok):
        return f"counters hold {total} adds, the load generator counted {result.ok} successes"
    return None


async def _verify_hot_key(client: httpx.AsyncClient, tag: str, result: LoadResult) -> str | None:
    return await _counted(client, [f"{tag}-hot"], result)


async def _verify_many_keys(client: httpx.AsyncClient, tag: str, result: LoadResult) -> str | None:
    used = min(result.issued, MANY_KEYS)
    return await _counted(client, [f"{tag}-k{i}" for i in range(used)], result)


def _send(tag: str) -> Issue:
    """One-way send, then attach to the invocation: the latency runs until it completed."""

    async def issue(client: Client, i: int) -> None:
        resp = await client.post("/BenchNoop/echo/send", json=i)
        if resp.status_code != 202:
            raise CheckFailed(f"send: HTTP {resp.status_code}: {resp.text[:80]}")
        invocation_id = resp.json()["invocationId"]
        _expect_int(await client.get(f"/restate/invocation/{invocation_id}/attach"), i)

    return issue


def _idempotent(tag: str) -> Issue:
    """A call with a fresh idempotency key: the server records the key and keeps the result."""

    async def issue(client: Client, i: int) -> None:
        resp = await client.post(
            "/BenchNoop/echo", json=i, headers={"idempotency-key": f"{tag}-{i}"}
        )
        _expect_int(resp, i)

    return issue


@dataclass(frozen=True)
class Case:
    name: str
    measures: str
    make: Callable[[str], Issue]
    verify: Verify | None = None
    concurrency: int | None = None
    """Workers for this case whatever --concurrency says (the latency case runs one)."""
    invocations: int = 1
    """Invocations one request makes (for the CPU cost per invocation)."""


CASES: dict[str, Case] = {
    case.name: case
    for case in [
        Case(
            "noop",
            "request-response call of a handler that returns its input (no journal entries)",
            _call(lambda i: "/BenchNoop/echo", lambda i: i),
        ),
        Case(
            "noop-c1",
            "the noop call by one client at a time: the latency of one invocation, unloaded",
            _call(lambda i: "/BenchNoop/echo", lambda i: i),
            concurrency=1,
        ),
        Case(
            "steps3",
            "call of a handler that runs 3 ctx.run steps, each journaled before the next",
            _call(lambda i: "/BenchSteps/three", lambda i: i + 6),
        ),
        Case(
            "chain",
            "call chain A -> B -> C: three invocations, two handler-to-handler calls",
            _call(lambda i: "/BenchChainA/first", lambda i: i + 111),
            invocations=3,
        ),
        Case(
            "hot-key",
            "exclusive object handler (get + set state) on ONE key: calls run one at a time",
            _hot_key,
            _verify_hot_key,
        ),
        Case(
            "many-keys",
            f"exclusive object handler (get + set state) over {MANY_KEYS} keys",
            _many_keys,
            _verify_many_keys,
        ),
        Case(
            "send",
            "one-way send (202) then attach until the invocation completed",
            _send,
        ),
        Case(
            "idempotent",
            "call with a fresh idempotency-key header (result kept for the retention period)",
            _idempotent,
        ),
    ]
}
