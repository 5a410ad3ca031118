"""A chaos run: start the cluster, run the workload, inject the faults one cycle at a time in a
random order at random moments, then let everything settle and verify (tests/chaos/checks.py).

Each cycle records how long recovery took: the restart (until the restarted process answers:
the server's /health endpoints, the deployment's port) and the time from the fault to the first
good answer (a round trip through the ingress, the server and the deployment). A kill window,
inside which the ingress may fail requests, runs from a server kill to one second after that first
good answer; elsewhere no 5xx and no transport error is allowed.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.chaos.checks import Verdict, verify
from tests.chaos.cluster import Cluster, cluster
from tests.chaos.workload import Workload

FAULTS = ("server", "deployment", "both", "blackhole", "goaway", "hang", "worker")
WINDOW_GRACE = 1.0


@dataclass
class Config:
    tmp: Path
    counts: dict[str, int]
    """fault kind -> cycles"""
    seed: int = 1
    actors: int = 6
    pause: float = 0.05
    """Most an actor waits between two requests (seconds, uniform)."""
    gap: tuple[float, float] = (0.5, 2.5)
    """Workload time before each fault (uniform)."""
    hang_seconds: float = 2.0
    goaway_seconds: float = 3.0
    goaway_after: int = 10
    stuck_timeout: float = 60.0
    server_args: tuple[str, ...] = ("--inactivity-timeout", "5s")
    progress: Callable[[str], None] | None = None
    """Called with a line per cycle (the command line prints them)."""


@dataclass
class Cycle:
    kind: str
    restart: float | None
    first_good: float | None
    """Seconds from the fault (from its end for a hang) to the first good answer."""


@dataclass
class Outcome:
    config: Config
    cycles: list[Cycle] = field(default_factory=list)
    verdict: Verdict = field(default_factory=Verdict)
    requests: int = 0
    seconds: float = 0.0
    settling: float = 0.0
    """From the end of the faults until every client had its answers."""
    verifying: float = 0.0
    silenced_connections: int = 0
    proxy_connections: int = 0

    @property
    def ok(self) -> bool:
        return self.verdict.ok and all(c.first_good is not None for c in self.cycles)

    def summary(self) -> str:
        v = self.verdict
        lines = [
            f"chaos: {len(self.cycles)} cycles in {self.seconds:.0f}s "
            f"({', '.join(f'{k} {n}' for k, n in self.config.counts.items() if n)}), "
            f"seed {self.config.seed}; settled in {self.settling:.0f}s, verified in "
            f"{self.verifying:.0f}s",
            f"  requests {self.requests}: accepted {v.accepted}, outcome unknown {v.unknown}; "
            f"invocations on the server {v.invocations}",
            f"  lost {len(v.lost)}, duplicated {len(v.duplicated)}, stuck {len(v.stuck)}, "
            f"wrong {len(v.wrong)}, errors outside kill windows {len(v.errors_outside_windows)}",
            f"  steps re-executed before their result was journaled (allowed): "
            f"{v.reexecuted_steps}",
            f"  proxy: {self.proxy_connections} connections, {self.silenced_connections} "
            f"black-holed",
        ]
        for kind in FAULTS:
            cycles = [c for c in self.cycles if c.kind == kind]
            if not cycles:
                continue
            restarts = [c.restart for c in cycles if c.restart is not None]
            goods = [c.first_good for c in cycles if c.first_good is not None]
            never = len(cycles) - len(goods)
            lines.append(
                f"  {kind:<10} x{len(cycles):<4} restart {_spread(restarts)}  "
                f"first good answer {_spread(goods)}" + (f"  NEVER {never}" if never else "")
            )
        for name in ("lost", "duplicated", "stuck", "wrong", "errors_outside_windows"):
            items: list[str] = getattr(v, name)
            for item in items[:10]:
                lines.append(f"  {name}: {item}")
            if len(items) > 10:
                lines.append(f"  {name}: ... {len(items) - 10} more")
        lines.append("PASS" if self.ok else "FAIL")
        return "\n".join(lines)


def _secs(value: float | None, none: str = "never") -> str:
    return none if value is None else f"{value:.2f}s"


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"min {min(values):.2f}s median {statistics.median(values):.2f}s max {max(values):.2f}s"


async def first_good_answer(ingress: str, deadline: float) -> float | None:
    """Seconds until POST /Work/ping answers 200 (None: not before the deadline)."""
    began = time.monotonic()
    async with httpx.AsyncClient(
        base_url=ingress, limits=httpx.Limits(max_keepalive_connections=0)
    ) as http:
        while time.monotonic() < deadline:
            try:
                resp = await http.post("/Work/ping", timeout=5.0)
                if resp.status_code == 200:
                    return time.monotonic() - began
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.02)
    return None


async def _fault(c: Cluster, cfg: Config, kind: str) -> tuple[Cycle, tuple[float, float] | None]:
    began_wall, began = time.time(), time.monotonic()
    restart: float | None = None
    if kind == "server":
        restart = await c.kill_server()
    elif kind == "deployment":
        restart = await c.kill_deployment()
    elif kind == "worker":
        restart = await c.kill_worker(int(began * 1000))
    elif kind == "both":
        restart = await c.kill_both()
    elif kind == "blackhole":
        await c.blackhole()
    elif kind == "hang":
        c.hang()
        await asyncio.sleep(cfg.hang_seconds)
        c.resume()
        began = time.monotonic()
    elif kind == "goaway":
        restart = await c.switch_deployment(cfg.goaway_after)
        await asyncio.sleep(cfg.goaway_seconds)  # the workload runs through GOAWAYs meanwhile
    good = await first_good_answer(c.ingress, time.monotonic() + cfg.stuck_timeout)
    done = time.monotonic()
    if kind == "goaway":
        await c.switch_deployment(0)
    # after a GOAWAY period: how long the probe itself took; otherwise: since the fault (its end)
    first_good = good if good is None or kind == "goaway" else done - began
    window = None
    if kind in {"server", "both", "worker"}:
        window = (began_wall, time.time() + WINDOW_GRACE)
    return Cycle(kind, restart, first_good), window


async def run(cfg: Config) -> Outcome:
    outcome = Outcome(cfg)
    rng = random.Random(cfg.seed)
    schedule = [kind for kind, n in cfg.counts.items() for _ in range(n)]
    rng.shuffle(schedule)
    started = time.monotonic()
    async with cluster(cfg.tmp, cfg.server_args) as c:
        workload = Workload(c.ingress, c.deployment.ledger, cfg.seed, cfg.stuck_timeout)
        windows: list[tuple[float, float]] = []
        timeline: list[str] = []
        actors = [asyncio.create_task(workload.actor(cfg.pause)) for _ in range(cfg.actors)]
        try:
            for kind in schedule:
                await asyncio.sleep(rng.uniform(*cfg.gap))
                began = time.time()
                cycle, window = await _fault(c, cfg, kind)
                outcome.cycles.append(cycle)
                restart, good = _secs(cycle.restart, "-"), _secs(cycle.first_good)
                line = (
                    f"{began:.3f} cycle {len(outcome.cycles)}/{len(schedule)} {kind}: "
                    f"restart {restart}, first good answer {good}"
                )
                timeline.append(line)
                if cfg.progress is not None:
                    cfg.progress(line)
                if window is not None:
                    windows.append(window)
                if cycle.first_good is None:
                    break  # no recovery: more faults would tell nothing more
            await asyncio.sleep(rng.uniform(*cfg.gap))
        finally:
            workload.stop()
            stopped = time.monotonic()
            await asyncio.wait(actors, timeout=cfg.stuck_timeout)
        stuck_requests = list(workload.in_flight.values())
        for task in actors:
            task.cancel()
        await asyncio.gather(*actors, return_exceptions=True)
        for task in actors:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
        await workload.close()
        outcome.requests = len(workload.requests)
        outcome.settling = time.monotonic() - stopped
        verifying = time.monotonic()
        outcome.verdict = await verify(
            ingress=c.ingress,
            admin_url=c.admin,
            requests=workload.requests,
            exchanges=workload.exchanges,
            windows=windows,
            ledger_path=c.deployment.ledger,
            stuck_timeout=cfg.stuck_timeout,
        )
        _write_timeline(cfg.tmp / "timeline.log", timeline, workload)
        outcome.verdict.stuck += [f"request {r}: no answer at the end" for r in stuck_requests]
        outcome.silenced_connections = c.silenced
        outcome.proxy_connections = c.proxy.connections
        outcome.verifying = time.monotonic() - verifying
    outcome.seconds = time.monotonic() - started
    return outcome


def _write_timeline(path: Path, faults: list[str], workload: Workload) -> None:
    """The faults and every failed exchange but refused connections, in time order (for
    diagnosing a failed run)."""
    lines = faults + [
        f"{e.t:.3f} {e.what}: {e.status} {e.error}"
        for e in workload.exchanges
        if (e.status is None or e.status >= 400) and not (e.error or "").startswith("ConnectError")
    ]
    path.write_text("\n".join(sorted(lines)) + "\n")
