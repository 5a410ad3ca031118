"""``python -m bench.pgstats``: what one invocation costs PostgreSQL when perdure stores there.

Starts a throwaway PostgreSQL server (tests/support/postgres.py: fsync on, pg_stat_statements),
perdure's server on it (``--store``) behind a counting TCP proxy, and the bench services (perdure
SDK). Per case (noop, steps3) and concurrency, it runs N requests and divides by N:

* transactions: ``pg_stat_database.xact_commit`` of perdure's database;
* statements: calls in ``pg_stat_statements`` (BEGIN, the fence check and COMMIT included);
* round trips: client-to-server turns on the proxied connections (a turn starts when perdure
  sends after having received), counted by the proxy, so independently of perdure's own code;
* bytes each way, and PostgreSQL's CPU (every process of that server, from /proc).

All traffic stays on loopback.

    python -m bench.pgstats --requests 400 --concurrency 1,32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from bench.targets import deployment
from tests.support.perdure_server import PerdureServer
from tests.support.postgres import PostgresServer

CASES: dict[str, tuple[str, Callable[[int], int]]] = {
    "noop": ("/BenchNoop/echo", lambda n: n),
    "steps3": ("/BenchSteps/three", lambda n: n + 6),
}


class CountingProxy:
    """A loopback TCP proxy that counts bytes and client-to-server turns (round trips)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.turns = 0
        self.sent = 0
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)

    def reset(self) -> None:
        self.turns = self.sent = self.received = 0

    async def _listen(self) -> None:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        state = {"client_turn": False}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            while data := await src.read(65536):
                if up:
                    self.sent += len(data)
                    if not state["client_turn"]:
                        state["client_turn"] = True
                        self.turns += 1
                else:
                    self.received += len(data)
                    state["client_turn"] = False
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False),
                             return_exceptions=True)  # fmt: skip


def postgres_cpu_seconds(pg: PostgresServer) -> float:
    """CPU seconds (user + system) of every process of this PostgreSQL server."""
    postmaster = int((pg.root / "data" / "postmaster.pid").read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += int(fields[11]) + int(fields[12])
    return total / tick


@dataclass
class Row:
    case: str
    concurrency: int
    requests: int
    seconds: float
    transactions: float
    statements: float
    round_trips: float
    bytes_sent: float
    bytes_received: float
    pg_cpu_ms: float


def snapshot(url: str, database: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        commits = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
        ).fetchone()
        calls = conn.execute(
            "SELECT COALESCE(sum(calls), 0) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s "
            "AND query NOT LIKE '%%pg_stat%%'",
            (database,),
        ).fetchone()
    assert commits is not None
    assert calls is not None
    return int(commits[0]), int(calls[0])


async def load(ingress: str, path: str, answer: Callable[[int], int], n: int, c: int) -> None:
    counter = iter(range(n))
    async with httpx.AsyncClient(base_url=ingress, timeout=60) as client:

        async def worker() -> None:
            for i in counter:
                response = await client.post(path, json=i)
                if response.status_code != 200 or response.json() != answer(i):
                    raise RuntimeError(f"{path}: {response.status_code} {response.text}")

        await asyncio.gather(*(worker() for _ in range(c)))


def measure(requests: int, concurrencies: list[int]) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, PostgresServer.start() as pg:
        url = pg.create_database("bench")
        database = url.rsplit("/", 1)[1]
        stats_url = pg.admin_url
        with psycopg.connect(stats_url, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        proxy = CountingProxy(pg.port)
        proxy.start()
        proxied = url.replace(f":{pg.port}/", f":{proxy.port}/")
        try:
            with (
                deployment(Path(tmp) / "deployment", sdk="perdure") as dep,
                PerdureServer.start(Path(tmp), args=["--store", proxied, "--log-level",
                                                     "warning"], store="sqlite") as server,
            ):  # fmt: skip
                server.register(dep.url)
                for case, (path, answer) in CASES.items():
                    asyncio.run(load(server.ingress, path, answer, 50, 8))  # warm-up
                    for c in concurrencies:
                        time.sleep(0.5)  # let the warm-up's last commits land
                        commits, calls = snapshot(stats_url, database)
                        proxy.reset()
                        cpu = postgres_cpu_seconds(pg)
                        started = time.monotonic()
                        asyncio.run(load(server.ingress, path, answer, requests, c))
                        seconds = time.monotonic() - started
                        time.sleep(0.2)
                        turns, sent, received = proxy.turns, proxy.sent, proxy.received
                        cpu = postgres_cpu_seconds(pg) - cpu
                        commits2, calls2 = snapshot(stats_url, database)
                        rows.append(Row(
                            case, c, requests, seconds,
                            (commits2 - commits) / requests, (calls2 - calls) / requests,
                            turns / requests, sent / requests, received / requests,
                            cpu * 1000 / requests,
                        ))  # fmt: skip
        finally:
            proxy.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pgstats", description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", default="1,32", help="comma-separated (default 1,32)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = measure(args.requests, [int(c) for c in args.concurrency.split(",")])
    print(f"{'case':8} {'c':>3} {'req/s':>7} {'tx/inv':>7} {'stmt/inv':>8} {'rt/inv':>7} "
          f"{'B out':>7} {'B in':>7} {'pg cpu ms/inv':>13}")  # fmt: skip
    for r in rows:
        print(f"{r.case:8} {r.concurrency:>3} {r.requests / r.seconds:>7.1f} "
              f"{r.transactions:>7.2f} {r.statements:>8.2f} {r.round_trips:>7.2f} "
              f"{r.bytes_sent:>7.0f} {r.bytes_received:>7.0f} {r.pg_cpu_ms:>13.2f}")  # fmt: skip
    if args.out is not None:
        args.out.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
