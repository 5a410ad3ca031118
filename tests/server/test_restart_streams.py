"""After a crash, every recovered attempt's stream begins with Start and the replayed journal.

Sleeps that fall due while the server is down fire the moment it restarts, while recovery is
still opening the streams of the running invocations; a completion forwarded then must not reach
the deployment ahead of Start (restate-sdk rejects such a stream with 571 "Unexpected state
'WaitingStart'" and drops its whole connection)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.server.conftest import deployed

pytestmark = [pytest.mark.interop, pytest.mark.timeout(300)]

CYCLES = 20
SLEEPERS = 20


def test_sigkill_with_sleeps_due_at_restart_never_starts_a_stream_with_a_notification(
    tmp_path: Path,
) -> None:
    with deployed(tmp_path) as d:
        client = d.client
        deadline = time.monotonic() + 240
        for cycle in range(CYCLES):
            ids = [
                client.post("/Sleeper/sleep/send", json=150 + 20 * n).json()["invocationId"]
                for n in range(SLEEPERS)
            ]
            time.sleep(0.1)  # the sleeps are journaled; they fall due while the server is down
            d.server.kill()
            d.server.restart()
            for inv in ids:
                left = max(1.0, deadline - time.monotonic())
                answer = client.get(f"/restate/invocation/{inv}/attach", timeout=left)
                assert answer.json() == "slept", f"cycle {cycle}: {answer.text}"
            assert time.monotonic() < deadline, f"only {cycle + 1} cycles in the time budget"
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
        assert "WaitingStart" not in logs  # the SDK's log (the deployment's) and the server's
        assert "failed: [571]" not in logs  # no attempt failed as a protocol violation
