"""Soak: does perdure's cost stay flat as data grows? (issue 10, point 6)

    python -m bench.soak                      # 1M noop invocations (an hour or more on 2 cores)
    python -m bench.soak --invocations 200000 --checkpoints 20000,200000 --window 10000

Measures a fresh instance first (the reference), then starts ``perdure server`` with the
perdure-SDK bench deployment (bench/targets.py, a fresh data dir), sets a short retention on the
noop service (``--retention``, so completed invocations expire and are purged during the run, as
they would in production over a longer time), and drives noop invocations closed-loop
(``--concurrency``, from ``--processes`` load processes) until ``--invocations`` completed.

At each checkpoint it measures a window of ``--window`` invocations: throughput, server CPU ms
per invocation (/proc, less sensitive to the shared machine than throughput), and afterwards the
server's RSS, its store's file sizes (database, WAL) and row counts, each line with its ratios
to the fresh instance (throughput, CPU) and to the first checkpoint (RSS). Targets: RSS at the
last checkpoint within 10% of the one at 100k, throughput within 10% of the fresh instance's.

Prints one line per checkpoint and writes JSON to bench/results/soak-<time>.json. Not a CI test:
tests/server/test_retention_bounded.py checks boundedness at small scale.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import targets
from bench.cpu import cpu_seconds
from bench.loadgen import CheckFailed, Client, LoadConfig, run_load_processes

RESULTS = Path(__file__).resolve().parent / "results"
TABLES = ("invocations", "journal", "timers", "sinks", "locks", "inbox", "idempotency", "state")


async def _noop(client: Client, i: int) -> None:
    resp = await client.post("/BenchNoop/echo", json=i)
    if resp.status_code != 200 or resp.json() != i:
        raise CheckFailed(f"HTTP {resp.status_code}: {resp.text[:80]}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def store_figures(data_dir: Path) -> dict[str, Any]:
    """File sizes (MB) and row counts of the server's SQLite store (read-only connection)."""
    figures: dict[str, Any] = {}
    databases = [p for p in data_dir.rglob("*.sqlite3")]
    for db in databases:
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{db}{suffix}")
            if path.exists():
                figures[f"mb{suffix or '-db'}"] = round(path.stat().st_size / 2**20, 2)
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            figures["rows"] = {
                t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES
            }
        finally:
            conn.close()
    return figures


class Load:
    """Noop invocations, closed loop, from several generator processes (one Python client
    process cannot keep a fast server busy)."""

    def __init__(self, processes: int, concurrency: int) -> None:
        self.processes = processes
        self.concurrency = concurrency

    def drive(self, ingress: str, count: int) -> float:
        """Run ``count`` noop invocations; returns invocations/s."""
        config = LoadConfig(concurrency=self.concurrency, requests=count, duration=10**6)
        result = run_load_processes(ingress, _noop, config, self.processes)
        if result.failed:
            raise SystemExit(f"{result.failed} requests failed: {dict(result.failures)}")
        return result.throughput

    def measure(self, target: targets.Target, data_dir: Path, window: int) -> dict[str, Any]:
        """A measured window: throughput, server CPU per invocation, then RSS and the store."""
        cpu_before = cpu_seconds(target.pid) or 0.0
        throughput = self.drive(target.ingress, window)
        cpu = (cpu_seconds(target.pid) or 0.0) - cpu_before
        return {
            "throughput_rps": round(throughput, 1),
            "server_cpu_ms_per_inv": round(1000 * cpu / window, 3),
            "rss_mb": round(rss_mb(target.pid), 1),
            **store_figures(data_dir),
        }


def set_retention(admin: str, retention: str) -> None:
    resp = httpx.patch(
        f"{admin}/services/BenchNoop", json={"journal_retention": retention}, timeout=30
    )
    resp.raise_for_status()


def soak(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))
    stack = targets.STACKS["perdure"]
    load = Load(args.processes, args.concurrency)
    report: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "invocations": checkpoints[-1],
        "window": args.window,
        "concurrency": args.concurrency,
        "retention": args.retention,
        "checkpoints": [],
    }
    with tempfile.TemporaryDirectory(prefix="perdure-soak-") as tmp:
        # the reference first: a fresh instance (so an interrupted soak still has one)
        with targets.start(stack, Path(tmp) / "fresh") as fresh:
            set_retention(fresh.admin, args.retention)
            load.drive(fresh.ingress, args.warmup)
            report["fresh"] = load.measure(fresh, Path(tmp) / "fresh", args.window)
            print(json.dumps({"fresh": report["fresh"]}), flush=True)
        with targets.start(stack, Path(tmp) / "long") as target:
            set_retention(target.admin, args.retention)
            data_dir = Path(tmp) / "long"
            load.drive(target.ingress, args.warmup)
            done = args.warmup
            started = time.monotonic()
            for checkpoint in checkpoints:
                while done < checkpoint - args.window:
                    step = min(args.step, checkpoint - args.window - done)
                    load.drive(target.ingress, step)
                    done += step
                figures = load.measure(target, data_dir, args.window)
                done += args.window
                figures["completed"] = done
                figures["elapsed_s"] = round(time.monotonic() - started)
                figures["throughput_vs_fresh"] = round(
                    figures["throughput_rps"] / report["fresh"]["throughput_rps"], 3
                )
                figures["cpu_vs_fresh"] = round(
                    figures["server_cpu_ms_per_inv"] / report["fresh"]["server_cpu_ms_per_inv"], 3
                )
                figures["rss_vs_first"] = round(
                    figures["rss_mb"] / (report["checkpoints"] or [figures])[0]["rss_mb"], 3
                )
                report["checkpoints"].append(figures)
                print(json.dumps(figures), flush=True)
                out.write_text(json.dumps(report, indent=2) + "\n")  # kept if interrupted
    last = report["checkpoints"][-1]
    at_100k = min(report["checkpoints"], key=lambda c: abs(c["completed"] - 100_000))
    report["rss_ratio_last_to_100k"] = round(last["rss_mb"] / at_100k["rss_mb"], 3)
    report["throughput_ratio_last_to_fresh"] = round(
        last["throughput_rps"] / report["fresh"]["throughput_rps"], 3
    )
    report["cpu_ratio_last_to_fresh"] = round(
        last["server_cpu_ms_per_inv"] / report["fresh"]["server_cpu_ms_per_inv"], 3
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--invocations", type=int, default=1_000_000)
    parser.add_argument(
        "--checkpoints",
        default=None,
        help="comma-separated counts (default: 10k, 25k, 50k, 100k, then every 100k to the end)",
    )
    parser.add_argument("--window", type=int, default=20_000, help="invocations per measurement")
    parser.add_argument("--step", type=int, default=50_000, help="invocations per load chunk")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--retention", default="1m", help="journal retention of the noop service")
    parser.add_argument("--processes", type=int, default=2, help="load processes (2)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.checkpoints is None:
        marks = [10_000, 25_000, 50_000, *range(100_000, args.invocations, 100_000)]
        args.checkpoints = ",".join(
            str(c) for c in [*marks, args.invocations] if c <= args.invocations
        )
    out = args.out or RESULTS / f"soak-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = soak(args, out)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if "ratio" in k}), flush=True)
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
