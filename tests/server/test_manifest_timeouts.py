"""Inactivity timeout 0 from the manifest, per handler and per service: the server closes each
attempt's request right after the journal, so a ``ctx.run`` result is acknowledged only by a new
attempt's replay. The handler never goes on past an unacknowledged run: the last attempt replays
all three runs and executes none. The official server behaves so; perdure's must too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.conftest import deployed

pytestmark = pytest.mark.interop

SERVICES = "tests.server.inactivity_services:app"


@pytest.mark.parametrize("official", [False, True], ids=["perdure", "official"])
def test_inactivity_timeout_zero_acknowledges_each_run_before_going_on(
    tmp_path: Path, official: bool
) -> None:
    with deployed(tmp_path, official=official, services=SERVICES) as d:
        for service in ("PerHandlerInactivity", "PerServiceInactivity"):
            for n in range(3):
                tag = f"{service}-{n}-"
                answer = d.client.post(f"/{service}/three_runs", json=tag)
                assert answer.json() == [f"{tag}0", f"{tag}1", f"{tag}2"], answer.text
        runs: dict[str, list[tuple[int, int]]] = {}
        for line in d.effect_lines("runs"):
            invocation, attempt, step = line.split()
            runs.setdefault(invocation, []).append((int(attempt), int(step)))
        assert len(runs) == 6
        for invocation, executed in runs.items():
            assert sorted(step for _, step in executed) == [0, 1, 2], invocation  # once each
            attempts = [attempt for attempt, _ in executed]
            assert len(set(attempts)) == 3, executed  # one run acknowledged per attempt
