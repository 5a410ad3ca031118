"""The chaos suite's short form, run by CI: 10 fault cycles (4 server SIGKILLs, 2 deployment
SIGKILLs, 1 of both, a black-holed connection, a GOAWAY period, a frozen deployment) under a
workload of every kind; then nothing lost, duplicated or stuck (tests/chaos/checks.py). About a
minute on 2 cores. The long form: docs/chaos.md. Select it alone with ``-m chaos``."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path

import pytest

from tests.chaos.runner import Config, run

pytestmark = pytest.mark.chaos


@pytest.mark.timeout(900)
def test_ten_fault_cycles_lose_duplicate_and_strand_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("PERDURE_CHAOS_SEED", random.randrange(1 << 30)))
    counts = {"server": 4, "deployment": 2, "both": 1, "blackhole": 1, "goaway": 1, "hang": 1}
    outcome = asyncio.run(run(Config(tmp_path, counts, seed=seed)))
    summary = outcome.summary()
    print(summary)
    assert len(outcome.cycles) == 10, summary
    assert outcome.verdict.invocations > 50, summary  # the workload really ran
    assert outcome.silenced_connections >= 1, summary  # the black hole swallowed a connection
    assert outcome.ok, f"{summary}\n(rerun with PERDURE_CHAOS_SEED={seed}; logs in {tmp_path})"


@pytest.mark.timeout(900)
def test_worker_kills_under_two_workers_lose_duplicate_and_strand_nothing(tmp_path: Path) -> None:
    """``perdure server --workers 2``: 4 SIGKILLs of one worker (the supervisor restarts it), one
    of the whole server and one of the deployment, under the same workload and checks (about a
    minute)."""
    seed = int(os.environ.get("PERDURE_CHAOS_SEED", random.randrange(1 << 30)))
    cfg = Config(tmp_path, {"worker": 4, "server": 1, "deployment": 1}, seed=seed)
    cfg.server_args = (*cfg.server_args, "--workers", "2")
    outcome = asyncio.run(run(cfg))
    summary = outcome.summary()
    print(summary)
    assert len(outcome.cycles) == 6, summary
    assert outcome.verdict.invocations > 50, summary
    assert outcome.ok, f"{summary}\n(rerun with PERDURE_CHAOS_SEED={seed}; logs in {tmp_path})"


@pytest.mark.timeout(900)
def test_a_three_node_cluster_loses_duplicates_and_strands_nothing(tmp_path: Path) -> None:
    """Three nodes on one PostgreSQL (tests/chaos/nodes.py): two node SIGKILLs (the others take
    over, then it rejoins), one node frozen past its lease (it must stop without writing, then
    rejoins) and one deployment SIGKILL, under the same workload spread over every node's
    ingress and the same checks (about 90 s)."""
    seed = int(os.environ.get("PERDURE_CHAOS_SEED", random.randrange(1 << 30)))
    cfg = Config(tmp_path, {"server": 2, "pause": 1, "deployment": 1}, seed=seed, nodes=3)
    outcome = asyncio.run(run(cfg))
    summary = outcome.summary()
    print(summary)
    assert len(outcome.cycles) == 4, summary
    assert outcome.verdict.invocations > 50, summary
    assert all(c.restart is not None and c.restart < 10 for c in outcome.cycles
               if c.kind in ("server", "pause")), summary  # takeover under 10 s  # fmt: skip
    assert outcome.ok, f"{summary}\n(rerun with PERDURE_CHAOS_SEED={seed}; logs in {tmp_path})"
