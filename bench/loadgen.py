"""The load generator: drives one benchmark case against one ingress and measures it.

Two modes:

* closed loop (default): ``concurrency`` workers, each issuing its next request as soon as the
  previous one finished. Measures the throughput a fixed number of clients can get.
* open loop (``rate`` set): request ``i`` is due at ``start + i / rate`` whatever happened before;
  at most ``concurrency`` are in flight. Latency counts from the due time, not from when a slot
  freed up, so a server that falls behind shows it (no coordinated omission).

Every run is bounded twice: by a request count and by a duration, whichever comes first. A
request counts as a success only when the case's own check of the answer passes; anything else
(status, body, timeout, connection error) is a failure, counted by reason.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

# One request of a case: given the client and the request's sequence number, do whatever the case
# needs (one or more HTTP exchanges) and raise CheckFailed (or any error) if the answer is wrong.
Issue = Callable[[httpx.AsyncClient, int], Awaitable[None]]


class CheckFailed(Exception):
    """The server answered, but not what the case expects; the message is the failure reason."""


@dataclass(frozen=True)
class LoadConfig:
    concurrency: int = 16
    """Workers (closed loop) or the in-flight cap (open loop). Default 16."""
    requests: int | None = None
    """Stop after issuing this many requests; None = only the duration bounds the run."""
    duration: float = 10.0
    """Stop issuing new requests after this many seconds. Default 10."""
    rate: float | None = None
    """Open loop: requests per second. None (default) = closed loop."""
    timeout: float = 60.0
    """Per-request timeout in seconds (connect, read, write, pool). Default 60."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.requests is not None and self.requests < 1:
            raise ValueError("requests must be at least 1 (or None)")
        if self.duration <= 0:
            raise ValueError("duration must be positive")
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or None for closed loop)")


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    """Seconds, one per successful request."""
    elapsed: float = 0.0
    """From the first request until the last one finished, in seconds."""

    @property
    def issued(self) -> int:
        return self.ok + self.failed

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile of the successful latencies, in seconds (nan if none)."""
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "failed": self.failed,
            "failures": dict(self.failures.most_common(5)),
            "elapsed_s": round(self.elapsed, 4),
            "throughput_rps": round(self.throughput, 2),
            "latency_ms": {
                name: round(self.percentile(p) * 1000, 3)
                for name, p in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
            },
        }


def _reason(exc: BaseException) -> str:
    if isinstance(exc, CheckFailed):
        return str(exc)[:120]
    return type(exc).__name__


class _Run:
    """Shared state of one run: request numbering, bounds, and the result being filled in."""

    def __init__(self, issue: Issue, config: LoadConfig) -> None:
        self.issue = issue
        self.config = config
        self.result = LoadResult()
        self.next_index = 0
        self.start = 0.0
        self.deadline = 0.0

    def take(self) -> int | None:
        """The next request number, or None once either bound is reached."""
        limit = self.config.requests
        if (limit is not None and self.next_index >= limit) or time.monotonic() >= self.deadline:
            return None
        index = self.next_index
        self.next_index += 1
        return index

    async def one(self, client: httpx.AsyncClient, index: int, started: float) -> None:
        try:
            await self.issue(client, index)
        except Exception as exc:  # any failure of one request is data, not a crash of the run
            self.result.failed += 1
            self.result.failures[_reason(exc)] += 1
        else:
            self.result.ok += 1
            self.result.latencies.append(time.monotonic() - started)


async def run_load(
    base_url: str,
    issue: Issue,
    config: LoadConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
) -> LoadResult:
    """Run ``issue`` against ``base_url`` under ``config``; return the measurements.

    ``transport`` replaces the network (tests use httpx.MockTransport).
    """
    run = _Run(issue, config)
    limits = httpx.Limits(
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency
    )
    async with httpx.AsyncClient(
        base_url=base_url, timeout=config.timeout, limits=limits, transport=transport
    ) as client:
        run.start = time.monotonic()
        run.deadline = run.start + config.duration
        if config.rate is None:
            await _closed_loop(run, client)
        else:
            await _open_loop(run, client, config.rate)
        run.result.elapsed = time.monotonic() - run.start
    return run.result


async def _closed_loop(run: _Run, client: httpx.AsyncClient) -> None:
    async def worker() -> None:
        while (index := run.take()) is not None:
            await run.one(client, index, time.monotonic())

    async with asyncio.TaskGroup() as group:
        for _ in range(run.config.concurrency):
            group.create_task(worker())


async def _open_loop(run: _Run, client: httpx.AsyncClient, rate: float) -> None:
    slots = asyncio.Semaphore(run.config.concurrency)

    async def fire(index: int, due: float) -> None:
        try:
            await run.one(client, index, due)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        while (index := run.take()) is not None:
            due = run.start + index / rate
            if due >= run.deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            group.create_task(fire(index, due))
