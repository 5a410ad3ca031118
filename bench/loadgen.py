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

The client is bench/http1.py's lean HTTP/1.1 client (httpx cost ~10x more CPU per request, and a
single generator process at c=32 then used a whole core and capped the servers it measured).
``run_load_processes`` splits one run over several generator processes: process k of n issues the
request numbers k, k+n, k+2n, ... with its share of the workers (and of the rate), and the
results are merged.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from bench.http1 import LeanClient


class Answer(Protocol):
    """What the cases read of a response (httpx.Response and bench.http1.Response have it)."""

    @property
    def status_code(self) -> int: ...
    @property
    def text(self) -> str: ...
    def json(self) -> Any: ...
    def raise_for_status(self) -> Any: ...


class Client(Protocol):
    """What the cases call on a client (httpx.AsyncClient and bench.http1.LeanClient have it)."""

    async def get(self, url: str, *, headers: dict[str, str] | None = None) -> Answer: ...
    async def post(
        self, url: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Answer: ...


# One request of a case: given the client and the request's sequence number, do whatever the case
# needs (one or more HTTP exchanges) and raise CheckFailed (or any error) if the answer is wrong.
Issue = Callable[[Client, int], Awaitable[None]]


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
    cpu: float = 0.0
    """CPU seconds the generator processes used during the run."""

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
    """Shared state of one run: request numbering, bounds, and the result being filled in.

    This process issues the request numbers ``first``, ``first + step``, ... (one generator
    process: 0, 1, 2, ...)."""

    def __init__(self, issue: Issue, config: LoadConfig, first: int = 0, step: int = 1) -> None:
        self.issue = issue
        self.config = config
        self.result = LoadResult()
        self.next_index = first
        self.step = step
        self.start = 0.0
        self.deadline = 0.0

    def take(self) -> int | None:
        """The next request number, or None once either bound is reached."""
        limit = self.config.requests
        if (limit is not None and self.next_index >= limit) or time.monotonic() >= self.deadline:
            return None
        index = self.next_index
        self.next_index += self.step
        return index

    async def one(self, client: Client, index: int, started: float) -> None:
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
    """Run ``issue`` against ``base_url`` under ``config`` in this process; return the measurements.

    ``transport`` replaces the network (tests use httpx.MockTransport; the client is then httpx).
    """
    return await _run_share(base_url, issue, config, transport=transport)


async def _run_share(
    base_url: str,
    issue: Issue,
    config: LoadConfig,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    first: int = 0,
    step: int = 1,
    start: float | None = None,
) -> LoadResult:
    run = _Run(issue, config, first, step)
    client: Any
    if transport is not None:
        limits = httpx.Limits(
            max_connections=config.concurrency, max_keepalive_connections=config.concurrency
        )
        client = httpx.AsyncClient(
            base_url=base_url, timeout=config.timeout, limits=limits, transport=transport
        )
    else:
        client = LeanClient(base_url, timeout=config.timeout)
    async with client:
        if start is not None and (wait := start - time.monotonic()) > 0:
            await asyncio.sleep(wait)  # every generator process starts at the same moment
        cpu = time.process_time()
        run.start = time.monotonic() if start is None else start
        run.deadline = run.start + config.duration
        if config.rate is None:
            await _closed_loop(run, client)
        else:
            await _open_loop(run, client, config.rate)
        run.result.elapsed = time.monotonic() - run.start
        run.result.cpu = time.process_time() - cpu
    return run.result


def _share(config: LoadConfig, k: int, n: int) -> LoadConfig:
    """Process k of n: its part of the workers and of the rate (the request bound stays global:
    it is compared with the global request numbers)."""
    workers = config.concurrency // n + (1 if k < config.concurrency % n else 0)
    rate = None if config.rate is None else config.rate / n
    return LoadConfig(workers, config.requests, config.duration, rate, config.timeout)


@dataclass(frozen=True)
class _Share:
    """What generator process ``k`` of ``n`` runs."""

    base_url: str
    issue: Issue
    config: LoadConfig
    k: int
    n: int
    start: float


def _child(conn: Any, share: _Share) -> None:
    k = share.k
    try:
        result = asyncio.run(
            _run_share(
                share.base_url, share.issue, share.config,
                first=k, step=share.n, start=share.start,
            )
        )  # fmt: skip
        conn.send(result)
    except BaseException as exc:  # reported to the parent, which raises it
        conn.send(RuntimeError(f"load generator process {k} failed: {exc!r}"))
    finally:
        conn.close()


def run_load_processes(
    base_url: str, issue: Issue, config: LoadConfig, processes: int
) -> LoadResult:
    """Run ``issue`` under ``config`` from ``processes`` generator processes (forked: ``issue``
    need not be picklable), all starting at the same instant; return the merged measurements.
    ``processes`` is capped by the concurrency (a process has at least one worker)."""
    n = max(1, min(processes, config.concurrency))
    if n == 1:
        return asyncio.run(run_load(base_url, issue, config))
    context = multiprocessing.get_context("fork")
    start = time.monotonic() + 0.2 + 0.02 * n  # time for every child to be up and connected
    children = []
    for k in range(n):
        receive, send = context.Pipe(duplex=False)
        proc = context.Process(
            target=_child, args=(send, _Share(base_url, issue, _share(config, k, n), k, n, start)),
            daemon=True,
        )  # fmt: skip
        proc.start()
        send.close()
        children.append((proc, receive))
    merged = LoadResult()
    errors = []
    for proc, receive in children:
        try:
            part = receive.recv()
        except EOFError:
            part = RuntimeError(f"load generator process {proc.pid} died")
        proc.join()
        if isinstance(part, BaseException):
            errors.append(part)
            continue
        merged.ok += part.ok
        merged.failed += part.failed
        merged.failures.update(part.failures)
        merged.latencies += part.latencies
        merged.elapsed = max(merged.elapsed, part.elapsed)
        merged.cpu += part.cpu
    if errors:
        raise errors[0]
    return merged


async def _closed_loop(run: _Run, client: Client) -> None:
    async def worker() -> None:
        while (index := run.take()) is not None:
            await run.one(client, index, time.monotonic())

    async with asyncio.TaskGroup() as group:
        for _ in range(run.config.concurrency):
            group.create_task(worker())


async def _open_loop(run: _Run, client: Client, rate: float) -> None:
    slots = asyncio.Semaphore(run.config.concurrency)

    async def fire(index: int, due: float) -> None:
        try:
            await run.one(client, index, due)
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        while (index := run.take()) is not None:
            due = run.start + index / (rate * run.step)  # rate: this process's share
            if due >= run.deadline:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            group.create_task(fire(index, due))
