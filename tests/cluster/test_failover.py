"""Failover of a real 3-node cluster under load: the chaos workload (every kind of request,
exactly-once accounting through the ledger, tests/chaos/checks.py) runs through all the nodes'
ingresses while nodes are SIGKILLed one after another, or frozen with SIGSTOP past their lease.

What must hold: the dead node's partitions are taken over within 10 s (PostgreSQL's clock: the
TTL is 5 s, a tick 1 s); every accepted request completes exactly once with the right result, no
acknowledged ``ctx.run`` runs twice, sleeping invocations keep their timers; a frozen node that
comes back writes nothing (a trigger records the writer of every row) and stops; restarted nodes
rejoin and the partitions spread evenly again. About 40 s each on 2 cores."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chaos.checks import verify
from tests.chaos.cluster import Deployment
from tests.cluster.nodes import Cluster, Node, WriteAudit, cluster
from tests.cluster.spread import SpreadWorkload
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(420)
TAKEOVER_LIMIT = 10.0
GRACE = 6.0
"""After a takeover, how long requests may still fail: a request forwarded to the dead node
before the takeover retries its connection for 5 s (routing's CONNECT_ATTEMPTS) before its 503."""
ACTORS = 6
STUCK_TIMEOUT = 60.0


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(free_port(), tmp_path / "ledger.jsonl", tmp_path)
    d.start()
    try:
        yield d
    finally:
        d.stop()


def _sleepers(node: Node, n: int, sleep_ms: int) -> list[str]:
    """``n`` sends through ``node``'s ingress of jobs that sleep ``sleep_ms`` (unkeyed: they
    land on partitions ``node`` owns); their invocation ids."""
    ids = []
    with httpx.Client(timeout=30.0) as http:
        for i in range(n):
            job = {"tag": f"sleeper-{node.name}-{i}", "steps": 2, "sleep_ms": sleep_ms}
            resp = http.post(f"{node.ingress}/Work/process/send", json=job)
            assert resp.status_code == 202, resp.text
            ids.append(resp.json()["invocationId"])
    return ids


async def _takeover(c: Cluster, survivors: list[str], began: float) -> float:
    await asyncio.to_thread(c.wait_settled, survivors, 30.0)
    return time.monotonic() - began


async def _run_and_verify(
    c: Cluster, deployment: Deployment, faults: object, seed: int
) -> tuple[list[float], list[str]]:
    """Run the workload over the live nodes while ``faults`` (an async function of the cluster
    returning the kill windows and takeover times) runs; then verify everything."""
    workload = SpreadWorkload(
        lambda: [n.ingress for n in c.nodes if n.alive()],
        deployment.ledger,
        seed,
        STUCK_TIMEOUT,
    )
    actors = [asyncio.create_task(workload.actor(0.05)) for _ in range(ACTORS)]
    try:
        await asyncio.sleep(3.0)
        windows, takeovers, sleepers = await faults(c)  # type: ignore[operator]
        await asyncio.sleep(2.0)
    finally:
        workload.stop()
        stopped = time.monotonic()
        await asyncio.wait(actors, timeout=STUCK_TIMEOUT)
        print(f"settled in {time.monotonic() - stopped:.1f}s")
    stuck_requests = list(workload.in_flight.values())
    for task in actors:
        task.cancel()
    await asyncio.gather(*actors, return_exceptions=True)
    await workload.close()
    live = next(n for n in c.nodes if n.alive())
    verifying = time.monotonic()
    verdict = await verify(
        ingress=live.ingress,
        admin_url=live.admin,
        requests=workload.requests,
        exchanges=workload.exchanges,
        windows=windows,
        ledger_path=deployment.ledger,
        stuck_timeout=STUCK_TIMEOUT,
    )
    print(f"verified in {time.monotonic() - verifying:.1f}s")
    summary = (
        f"requests {len(workload.requests)}, accepted {verdict.accepted}, unknown "
        f"{verdict.unknown}, invocations {verdict.invocations}; lost {verdict.lost[:5]}, "
        f"duplicated {verdict.duplicated[:5]}, stuck {verdict.stuck[:5]}, wrong "
        f"{verdict.wrong[:5]}, errors outside windows {verdict.errors_outside_windows[:5]}"
    )
    assert not stuck_requests, f"requests without an answer: {stuck_requests}"
    assert verdict.invocations > 50, summary
    assert verdict.ok, summary
    with httpx.Client(timeout=30.0) as http:  # the sleepers completed, timers kept
        for inv in sleepers:
            resp = http.get(f"{live.ingress}/restate/invocation/{inv}/output")
            assert resp.status_code == 200, f"{inv}: {resp.status_code} {resp.text}"
    return takeovers, sleepers


def test_sigkill_one_node_then_another_under_load(
    pg_dsn: str, tmp_path: Path, deployment: Deployment
) -> None:
    async def faults(c: Cluster) -> tuple[list[tuple[float, float]], list[float], list[str]]:
        windows, takeovers, sleepers = [], [], []
        for victim, survivors in (("a", ["b", "c"]), ("b", ["c"])):
            node = c.node(victim)
            sleepers += await asyncio.to_thread(_sleepers, node, 4, 3000)
            await asyncio.sleep(0.5)
            wall, began = time.time(), time.monotonic()
            await asyncio.to_thread(node.kill)
            takeovers.append(await _takeover(c, survivors, began))
            windows.append((wall, time.time() + GRACE))
            await asyncio.sleep(3.0)
        wall = time.time()
        for name in ("a", "b"):  # rejoin: the partitions spread over all three again
            await asyncio.to_thread(c.node(name).start)
        await asyncio.to_thread(c.wait_settled, ["a", "b", "c"], 30.0)
        windows.append((wall, time.time() + GRACE))
        return windows, takeovers, sleepers

    with cluster(pg_dsn, tmp_path) as c:
        c.register(f"http://127.0.0.1:{deployment.port}")
        takeovers, _ = asyncio.run(_run_and_verify(c, deployment, faults, seed=11))
    print(f"takeovers: {[f'{t:.2f}s' for t in takeovers]}")
    assert all(t < TAKEOVER_LIMIT for t in takeovers), takeovers


def test_a_node_frozen_past_its_lease_writes_nothing_when_it_wakes(
    pg_dsn: str, tmp_path: Path, deployment: Deployment
) -> None:
    evidence: dict[str, object] = {}

    async def faults(c: Cluster) -> tuple[list[tuple[float, float]], list[float], list[str]]:
        audit = WriteAudit(pg_dsn)
        a = c.node("a")
        # a holds sleeping invocations whose timers fall due while it is frozen: once it wakes
        # it has work to commit, and must commit none of it
        sleepers = await asyncio.to_thread(_sleepers, a, 6, 4000)
        await asyncio.sleep(0.5)
        assert audit.count_by("a") > 0  # the audit sees a's writes while it holds its leases
        wall, began = time.time(), time.monotonic()
        a.signal(signal.SIGSTOP)
        takeover = await _takeover(c, ["b", "c"], began)
        await asyncio.sleep(5.0)  # a's timers are due now
        a.signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while a.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        evidence["exit"] = a.exit_code()
        evidence["log"] = a.log_tail(60)
        # a transaction a had already sent when it froze may land just after: allow 0.5 s
        evidence["writes"] = audit.writes_by("a", wall + 0.5)
        windows = [(wall, time.time() + GRACE)]
        rejoin = time.time()
        await asyncio.to_thread(a.start)
        await asyncio.to_thread(c.wait_settled, ["a", "b", "c"], 30.0)
        windows.append((rejoin, time.time() + GRACE))
        return windows, [takeover], sleepers

    with cluster(pg_dsn, tmp_path) as c:
        c.register(f"http://127.0.0.1:{deployment.port}")
        takeovers, _ = asyncio.run(_run_and_verify(c, deployment, faults, seed=12))
    assert takeovers[0] < TAKEOVER_LIMIT, takeovers
    assert evidence["writes"] == [], evidence["writes"]
    assert evidence["exit"] == 75, (evidence["exit"], evidence["log"])
    # it stopped either at its next lease renewal or at its first commit, which was fenced
    log = str(evidence["log"])
    assert "were taken over by another node" in log or "took over" in log, log
