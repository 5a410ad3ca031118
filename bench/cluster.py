"""Throughput of a cluster of 1, 2, 3... nodes on one PostgreSQL (issue 11): the same closed-loop
load spread round-robin over every node's ingress, perdure SDK deployment, fresh database and
nodes for each size.

    python -m bench.cluster --nodes 1 2 3 --case noop --case steps3 --duration 10

On one machine the nodes share its cores with PostgreSQL, the deployment and the load generator:
more nodes cannot add throughput here, the point is that it does not collapse (forwarding between
nodes and messages between partitions cost CPU; see docs/scaling.md). Prints one line per run:
requests/s, p50/p99 latency, failures, and the CPU seconds the nodes and PostgreSQL used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from bench.cases import CASES
from bench.http1 import LeanClient
from bench.loadgen import Client, Issue, LoadConfig, run_load
from bench.targets import deployment
from tests.cluster.nodes import cluster
from tests.support.postgres import PostgresServer

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their children so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total / _TICKS


def _postgres_cpu(pg: PostgresServer) -> float:
    """CPU seconds of this PostgreSQL server: its postmaster, its live backends, and (through
    the postmaster's children counters) the backends that exited."""
    postmaster = int((pg.root / "data" / "postmaster.pid").read_text().split()[0])
    backends = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == postmaster:
                backends.append(int(entry.name))
    return _cpu_seconds([postmaster]) + sum(_cpu_seconds([b]) for b in backends)


class _Spread:
    """An ``Issue`` sending request ``i`` to node ``i % n`` (a lean client per node)."""

    def __init__(self, issue: Issue, ingresses: list[str]) -> None:
        self.issue = issue
        self.ingresses = ingresses
        self.clients: list[LeanClient] = []

    async def __call__(self, _client: Client, i: int) -> None:
        if not self.clients:
            self.clients = [LeanClient(url, timeout=60.0) for url in self.ingresses]
        await self.issue(self.clients[i % len(self.clients)], i)

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()
        self.clients = []


async def _measure(ingresses: list[str], case: str, cfg: LoadConfig) -> dict[str, float]:
    spread = _Spread(CASES[case].make(f"cluster-{case}"), ingresses)
    try:
        await run_load(ingresses[0], spread, LoadConfig(concurrency=cfg.concurrency, duration=2.0))
        result = await run_load(ingresses[0], spread, cfg)
    finally:
        await spread.close()
    return {
        "throughput": result.throughput,
        "p50": result.percentile(50) * 1000,
        "p99": result.percentile(99) * 1000,
        "failures": float(result.failed),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--case", action="append", choices=sorted(CASES), help="noop by default")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args(argv)
    cases = args.case or ["noop"]
    cfg = LoadConfig(concurrency=args.concurrency, duration=args.duration)
    tmp = Path(tempfile.mkdtemp(prefix="perdure-bench-cluster-"))
    print(f"{'nodes':>5} {'case':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'fail':>5} "
          f"{'node CPU s':>10} {'PG CPU s':>8}")  # fmt: skip
    with PostgresServer.start() as pg, deployment(tmp / "deployment", sdk="perdure") as dep:
        for n in args.nodes:
            names = [chr(ord("a") + i) for i in range(n)]
            with cluster(pg.create_database("bench"), tmp / f"n{n}", names) as c:
                c.register(dep.url)
                time.sleep(1.0)  # every node has seen the registration
                ingresses = [node.ingress for node in c.nodes]
                pids = [node.child.proc.pid for node in c.nodes]  # cluster() started every node
                for case in cases:
                    nodes_before, pg_before = _cpu_seconds(pids), _postgres_cpu(pg)
                    m = asyncio.run(_measure(ingresses, case, cfg))
                    node_cpu = _cpu_seconds(pids) - nodes_before
                    pg_cpu = _postgres_cpu(pg) - pg_before
                    print(f"{n:>5} {case:<8} {m['throughput']:>8.0f} {m['p50']:>8.1f} "
                          f"{m['p99']:>8.1f} {m['failures']:>5.0f} {node_cpu:>10.1f} "
                          f"{pg_cpu:>8.1f}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
