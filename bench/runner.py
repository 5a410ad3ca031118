"""Runs the chosen cases on each chosen stack, one stack at a time (a stack's processes share 2
cores with the load generator), and collects the measurements.

Per stack: start it fresh (deployment, then server, registered), then per case a short warm-up
(not counted, so connection setup and first-call discovery do not pollute the numbers), the
measured run, and the case's verification. Only loopback traffic.
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
from bench.loadgen import LoadConfig, LoadResult, run_load, run_load_processes


@dataclass(frozen=True)
class Plan:
    cases: list[str]
    stacks: list[str]
    load: LoadConfig
    warmup: LoadConfig
    profile_dir: Path | None = None
    """Record py-spy profiles of perdure's processes (server, SDK) per case into this directory."""
    deployment_workers: int = 1
    loadgen_processes: int = 2
    """Load generator processes the measured run is split over (the warm-up uses one)."""


@dataclass
class Outcome:
    """One case on one stack."""

    case: str
    stack: str
    result: LoadResult | None = None
    problem: str | None = None
    """Why the run is not trustworthy (verification failed, server unavailable), or None."""
    profiles: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    """CPU seconds used during the measured run, per process: server, deployment, loadgen (the
    deployment is missing when the services run inside the server: dev)."""

    @property
    def server(self) -> str:
        return targets.STACKS[self.stack].server

    def cpu_ms_per_invocation(self, process: str) -> float | None:
        """CPU milliseconds ``process`` spent per invocation (successful requests times the
        invocations one request of the case makes), or None when not measured."""
        if self.result is None or not self.result.ok or process not in self.cpu:
            return None
        invocations = self.result.ok * CASES[self.case].invocations
        return 1000 * self.cpu[process] / invocations

    def to_json(self) -> dict[str, Any]:
        stack = targets.STACKS[self.stack]
        body: dict[str, Any] = {
            "case": self.case, "stack": self.stack, "server": stack.server, "sdk": stack.sdk,
        }  # fmt: skip
        if self.result is not None:
            body.update(self.result.summary())
        if self.problem:
            body["problem"] = self.problem
        if self.profiles:
            body["profiles"] = self.profiles
        if self.cpu:
            body["cpu_s"] = {name: round(seconds, 3) for name, seconds in self.cpu.items()}
            per = {p: self.cpu_ms_per_invocation(p) for p in ("server", "deployment")}
            body["cpu_ms_per_invocation"] = {
                p: round(v, 3) for p, v in per.items() if v is not None
            }
        return body


@dataclass
class Report:
    plan: Plan
    started: str
    outcomes: list[Outcome] = field(default_factory=list)

    def get(self, case: str, stack: str) -> Outcome | None:
        for outcome in self.outcomes:
            if outcome.case == case and outcome.stack == stack:
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
                "loadgen_processes": self.plan.loadgen_processes,
                "deployment": {
                    "official": f"restate-sdk (official Python SDK) {targets.DEPLOYMENT_APP}, "
                    f"hypercorn x{self.plan.deployment_workers} -c bench/hypercorn.toml, h2c",
                    "perdure": f"perdure SDK {targets.PERDURE_APP}, perdure.serve, h2c",
                },
            },
            "stacks": {name: targets.STACKS[name].title for name in self.plan.stacks},
            "cases": {name: CASES[name].measures for name in self.plan.cases},
            "results": [o.to_json() for o in self.outcomes],
        }


def run_plan(plan: Plan, tmp: Path, log: Any = print) -> Report:
    report = Report(plan, datetime.now(UTC).isoformat(timespec="seconds"))
    for name in plan.stacks:
        stack = targets.STACKS[name]
        try:
            with targets.start(
                stack, tmp / name, deployment_workers=plan.deployment_workers
            ) as target:
                for case in plan.cases:
                    report.outcomes.append(_run_case(plan, target, CASES[case], log))
        except targets.TargetUnavailable as exc:
            log(f"[{name}] skipped: {exc}")
            report.outcomes += [Outcome(n, name, problem=str(exc)) for n in plan.cases]
    return report


def _cpu_now(target: targets.Target) -> dict[str, float | None]:
    now = {"server": cpu_seconds(target.pid)}
    if target.sdk_pid is not None:
        now["deployment"] = cpu_seconds(target.sdk_pid)
    return now


def _profiled(target: targets.Target) -> list[tuple[str, int]]:
    """(role, pid) of the stack's perdure processes: what --profile records."""
    stack = target.stack
    roles = [("server", target.pid)] if stack.server in ("perdure", "dev") else []
    if stack.sdk == "perdure" and target.sdk_pid is not None:
        roles.append(("sdk", target.sdk_pid))
    return roles


def _run_case(plan: Plan, target: targets.Target, case: Case, log: Any) -> Outcome:
    outcome = Outcome(case.name, target.kind)
    load, warmup = plan.load, plan.warmup
    if case.concurrency is not None:
        load = replace(load, concurrency=case.concurrency)
        warmup = replace(warmup, concurrency=case.concurrency)
    asyncio.run(run_load(target.ingress, case.make(f"warm-{uuid.uuid4().hex[:8]}"), warmup))
    tag = f"run-{uuid.uuid4().hex[:8]}"
    with ExitStack() as stack:
        if plan.profile_dir is not None:
            for role, pid in _profiled(target):
                raw = plan.profile_dir / f"{target.kind}-{case.name}-{role}.raw.txt"
                stack.enter_context(profiling.recording(pid, raw))
                outcome.profiles.append(str(raw))
        before = _cpu_now(target)
        result = run_load_processes(target.ingress, case.make(tag), load, plan.loadgen_processes)
        after = _cpu_now(target)
    outcome.result = result
    outcome.cpu = {
        name: end - start
        for name, end in after.items()
        if end is not None and (start := before[name]) is not None
    }
    outcome.cpu["loadgen"] = result.cpu  # the generator processes' own count
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
    for process in ("server", "deployment"):
        per = outcome.cpu_ms_per_invocation(process)
        if per is not None:
            busy += f"  {process} {per:.2f} ms/inv"
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
