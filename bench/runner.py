"""Runs the chosen cases on each chosen server, one server at a time (they share 2 cores with the
deployment and the load generator), and collects the measurements.

Per server: start it fresh, register the deployment, then per case a short warm-up (not counted,
so connection setup and first-call discovery do not pollute the numbers), the measured run, and
the case's verification. Only loopback traffic.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import profiling, targets
from bench.cases import CASES, Case
from bench.cpu import cpu_seconds
from bench.loadgen import LoadConfig, LoadResult, run_load


@dataclass(frozen=True)
class Plan:
    cases: list[str]
    servers: list[str]
    load: LoadConfig
    warmup: LoadConfig
    profile_dir: Path | None = None
    """Record a py-spy profile of perdure's server per case into this directory."""
    deployment_workers: int = 1


@dataclass
class Outcome:
    """One case on one server."""

    case: str
    server: str
    result: LoadResult | None = None
    problem: str | None = None
    """Why the run is not trustworthy (verification failed, server unavailable), or None."""
    profile: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used during the measured run, per process: server, deployment, loadgen."""

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"case": self.case, "server": self.server}
        if self.result is not None:
            body.update(self.result.summary())
        if self.problem:
            body["problem"] = self.problem
        if self.profile:
            body["profile"] = self.profile
        if self.cpu:
            body["cpu_s"] = {name: round(seconds, 2) for name, seconds in self.cpu.items()}
        return body


@dataclass
class Report:
    plan: Plan
    started: str
    outcomes: list[Outcome] = field(default_factory=list)

    def get(self, case: str, server: str) -> Outcome | None:
        for outcome in self.outcomes:
            if outcome.case == case and outcome.server == server:
                return outcome
        return None

    def to_json(self) -> dict[str, Any]:
        load = self.plan.load
        return {
            "started": self.started,
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "config": {
                "concurrency": load.concurrency,
                "requests": load.requests,
                "duration_s": load.duration,
                "rate": load.rate,
                "warmup_requests": self.plan.warmup.requests,
                "deployment": f"restate-sdk (official Python SDK) {targets.DEPLOYMENT_APP}, "
                f"hypercorn x{self.plan.deployment_workers}, h2c",
            },
            "cases": {name: CASES[name].measures for name in self.plan.cases},
            "results": [o.to_json() for o in self.outcomes],
        }


def run_plan(plan: Plan, tmp: Path, log: Any = print) -> Report:
    report = Report(plan, datetime.now(UTC).isoformat(timespec="seconds"))
    with targets.deployment(tmp / "deployment", workers=plan.deployment_workers) as deployment:
        for kind in plan.servers:
            try:
                with targets.server(kind, tmp / kind, deployment.url) as target:
                    for name in plan.cases:
                        outcome = _run_case(plan, target, deployment, CASES[name], log)
                        report.outcomes.append(outcome)
            except targets.TargetUnavailable as exc:
                log(f"[{kind}] skipped: {exc}")
                report.outcomes += [Outcome(n, kind, problem=str(exc)) for n in plan.cases]
    return report


def _cpu_now(target: targets.Target, deployment: targets.Deployment) -> dict[str, float | None]:
    return {
        "server": cpu_seconds(target.pid),
        "deployment": cpu_seconds(deployment.pid),
        "loadgen": time.process_time(),  # this process only: the servers are its children
    }


def _run_case(
    plan: Plan, target: targets.Target, deployment: targets.Deployment, case: Case, log: Any
) -> Outcome:
    outcome = Outcome(case.name, target.kind)
    asyncio.run(run_load(target.ingress, case.make(f"warm-{uuid.uuid4().hex[:8]}"), plan.warmup))
    tag = f"run-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        if plan.profile_dir is not None and target.kind == "perdure":
            raw = plan.profile_dir / f"{case.name}.raw.txt"
            stack.enter_context(profiling.recording(target.pid, raw))
            outcome.profile = str(raw)
        before = _cpu_now(target, deployment)
        result = asyncio.run(run_load(target.ingress, case.make(tag), plan.load))
        after = _cpu_now(target, deployment)
    outcome.result = result
    outcome.cpu = {
        name: end - start
        for name, end in after.items()
        if end is not None and (start := before[name]) is not None
    }
    if case.verify is not None:
        outcome.problem = asyncio.run(_verify(target.ingress, case, tag, result))
    if result.failed:
        failures = ", ".join(f"{n}x {why}" for why, n in result.failures.most_common(3))
        outcome.problem = outcome.problem or f"{result.failed} failed: {failures}"
    summary = result.summary()
    latency = summary["latency_ms"]
    busy = "  ".join(
        f"{name} {seconds / result.elapsed:.0%}" for name, seconds in outcome.cpu.items()
    )
    log(
        f"[{target.kind}] {case.name:<10} {result.ok:>6} ok {result.failed:>4} failed "
        f"{result.throughput:>8.1f}/s  p50 {latency['p50']:.1f} ms  p99 {latency['p99']:.1f} ms"
        f"  cpu: {busy}" + (f"  PROBLEM: {outcome.problem}" if outcome.problem else "")
    )
    return outcome


async def _verify(ingress: str, case: Case, tag: str, result: LoadResult) -> str | None:
    assert case.verify is not None
    async with httpx.AsyncClient(base_url=ingress, timeout=60.0) as client:
        return await case.verify(client, tag, result)


def quick(load: LoadConfig) -> tuple[LoadConfig, LoadConfig]:
    """The --quick bounds: a few seconds per case."""
    return replace(load, duration=min(load.duration, 3.0)), LoadConfig(
        concurrency=load.concurrency, requests=20, duration=5.0
    )


def now_stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")
