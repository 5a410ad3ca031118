"""Cost stays flat as data grows: once their retention ends, completed invocations leave no trace,
in the engine's memory (storage/hot.py) or in the store's tables. ``python -m bench.soak`` checks
the same at 1M invocations on a real server; this is the small-scale version (about 2 s)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

import perdure
from perdure import Context, ObjectContext
from perdure.server.registry import Defaults
from perdure.server.storage import Store
from perdure.server.storage import sqlite as sqlite_store
from perdure.server.storage.hot import HotStore
from perdure.testing import Harness

RETENTION_MS = 60_000
TABLES = ("invocations", "journal", "timers", "sinks", "locks", "inbox", "idempotency")

noop = perdure.Service("Noop")


@noop.handler()
async def echo(ctx: Context, n: int) -> int:
    return n


@noop.handler()
async def call_echo(ctx: Context, n: int) -> int:
    """A call (a sink waits for the callee) and a sleep (a timer)."""
    await ctx.sleep(timedelta(milliseconds=10))
    result: int = await ctx.service(echo).request(n)
    return result


counter = perdure.VirtualObject("Tally")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + n
    ctx.set("total", total)
    return total


def rows(h: Harness) -> dict[str, int]:
    with sqlite3.connect(h.runtime.db_path) as db:
        return {t: int(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


@pytest.mark.asyncio
async def test_completed_invocations_leave_memory_and_tables_when_their_retention_ends() -> None:
    defaults = Defaults(journal_retention=RETENTION_MS, idempotency_retention=RETENTION_MS)
    async with Harness([noop, counter], defaults=defaults) as h:
        store = h.runtime.engine._store
        assert isinstance(store, HotStore)
        baseline_memory, baseline_rows = store.memory_sizes(), rows(h)

        async def one(i: int) -> None:
            match i % 4:
                case 0:
                    assert await h.client.service(echo).request(i) == i
                case 1:
                    assert await h.client.service(call_echo).request(i) == i
                case 2:
                    assert await h.client.service(echo).request(i, idempotency_key=f"k{i}") == i
                case _:
                    await h.client.object(add, f"key{i % 8}").request(1)

        for start in range(0, 200, 20):
            await asyncio.gather(*(one(i) for i in range(start, start + 20)))
        await h.settle()
        grown = rows(h)
        assert grown["invocations"] == 250  # 200 requests + 50 callees, kept for retention
        # a retention end is the invocation's expires_at (indexed), not a timer row
        assert grown["idempotency"] == 50 and grown["timers"] == 0
        assert store.memory_sizes()["invocations"] == 0  # completed: not in memory
        assert store.memory_sizes()["timers"] == 0
        next_at = h.runtime.engine.next_timer_at()
        assert next_at is not None and next_at > h.clock.now_ms()  # the first retention end

        h.clock.advance(timedelta(milliseconds=RETENTION_MS + 1))
        for _ in range(500):
            if rows(h) == baseline_rows:
                break
            await asyncio.sleep(0.01)
        await h.settle()
        assert rows(h) == baseline_rows
        assert store.memory_sizes() == baseline_memory
        assert h.runtime.engine.waiting_requests() == 0
        assert len(h.runtime.engine._waiters) == 0


def test_the_wal_stays_bounded_under_steady_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches committed on one thread while another syncs (the engine's pipeline): the WAL is
    truncated once past the limit instead of growing with every batch."""
    monkeypatch.setattr(sqlite_store, "WAL_LIMIT", 256 << 10)
    monkeypatch.setattr(sqlite_store, "CHECKPOINT_INTERVAL", 0.0)
    store = Store(tmp_path / "db")
    stop = threading.Event()
    largest = 0

    def writer_thread() -> None:
        while not stop.is_set():
            store.sync()

    syncer = threading.Thread(target=writer_thread)
    syncer.start()
    try:
        for n in range(3000):
            store.begin()
            store.set_state("S", f"k{n % 50}", b"v", bytes(1000))
            store.commit()
            if n % 50 == 0:
                time.sleep(0.001)  # the engine commits at the event loop's pace, not flat out
            largest = max(largest, os.path.getsize(f"{tmp_path / 'db'}-wal"))
    finally:
        stop.set()
        syncer.join()
        store.close()
    assert largest < 24 << 20  # unbounded, the 3000 batches make a WAL of about 40 MB
