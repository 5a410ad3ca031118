"""``perdure.serve`` on SIGTERM, with a real deployment process behind each server: an attempt in
flight gets the grace period, then is cut; either way the invocation completes once the
deployment is back (the server retries, the journal replays)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, unique
from tests.support.processes import Child, free_port, wait_tcp

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
GRACE = 1.5


@contextmanager
def deployment(port: int, marks: Path, log: Path) -> Iterator[Child]:
    child = Child(
        "perdure.serve deployment",
        [
            sys.executable,
            "-m",
            "tests.scenarios.shutdown_service",
            str(port),
            str(GRACE),
            str(marks),
        ],
        log,
        cwd=REPO,
    )
    try:
        wait_tcp(port, "perdure.serve deployment", child)
        yield child
    finally:
        child.stop()


def sigterm_and_time_exit(child: Child) -> float:
    started = time.monotonic()
    os.killpg(child.proc.pid, signal.SIGTERM)
    try:
        child.proc.wait(timeout=GRACE + 20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"no exit after SIGTERM:\n{child.log_tail()}") from None
    return time.monotonic() - started


def register(server: Any, port: int) -> None:
    server.register(f"http://127.0.0.1:{port}", use_http_11=server.mode.endswith("http1.1"))


def start_work(server: Any, marks: Path, seconds: float) -> tuple[str, Path]:
    name = unique("job")
    sent = httpx.post(
        f"{server.ingress}/Shutdown/work/send",
        json={"name": name, "seconds": seconds},
        timeout=30,
    )
    assert sent.status_code == 202, sent.text
    mark = marks / name
    eventually(mark.exists, "the step started")
    return sent.json()["invocationId"], mark


def result(server: Any, invocation: str) -> httpx.Response:
    return httpx.get(f"{server.ingress}/restate/invocation/{invocation}/attach", timeout=60)


def test_an_attempt_within_the_grace_period_finishes(server: Any, tmp_path: Path) -> None:
    port, marks = free_port(), tmp_path
    with deployment(port, marks, tmp_path / "first.log") as child:
        register(server, port)
        invocation, mark = start_work(server, marks, seconds=0.6)
        sigterm_and_time_exit(child)
    # The step finished during the grace period and was journaled: it does not run again.
    with deployment(port, marks, tmp_path / "second.log"):
        answer = result(server, invocation)
        assert answer.status_code == 200, answer.text
        assert answer.json() == "step ran 1 time(s)"
    assert mark.read_text().splitlines() == ["started"]


def test_an_attempt_past_the_grace_period_is_cut_and_retried(server: Any, tmp_path: Path) -> None:
    port, marks = free_port(), tmp_path
    with deployment(port, marks, tmp_path / "first.log") as child:
        register(server, port)
        invocation, mark = start_work(server, marks, seconds=60)
        took = sigterm_and_time_exit(child)
    assert GRACE - 0.5 <= took < GRACE + 10, took
    with deployment(port, marks, tmp_path / "second.log"):
        answer = result(server, invocation)
        assert answer.status_code == 200, answer.text
        assert answer.json() == "step ran 2 time(s)"
    assert mark.read_text().splitlines() == ["started", "started"]
