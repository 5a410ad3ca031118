"""The chaos ledger: an append-only file where the deployment records every execution of a
durable step (``exec``) and every time a handler got a step's acknowledged result back
(``ack``), so that the runner can tell a legitimate re-execution from a duplicate.

One JSON object per line, written with one ``write`` on an ``O_APPEND`` descriptor and fsynced
before the step returns: a line is on disk before anything can depend on it, lines from
concurrent writers never interleave, and a SIGKILL cannot leave a line half written (a write to a
regular file is not interrupted by a signal).

The rule checked (``step_violations``), for every (invocation, step):

* a step may execute several times: an execution whose result the server had not yet made durable
  (the deployment or the server died, the connection broke, the attempt was abandoned) is lost
  and the step runs again on the next attempt;
* once a handler has seen the step's result come back from the server (the first ``ack``), the
  result is journaled for good: no execution of that step may start after it, and every later
  ``ack`` (replays) carries the same token, one that an execution produced.

An execution after the first ``ack``, or two different acknowledged tokens, means an acknowledged
step ran twice: the server lost or ignored a journaled result.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Ledger:
    """The writer side, used inside the deployment process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, kind: str, **fields: Any) -> None:
        record = {"kind": kind, "t": time.time(), "pid": os.getpid(), **fields}
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)
        os.fsync(self._fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Every complete record, in file order (the order the writes happened)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        for raw in f:
            if raw.endswith(b"\n"):
                yield json.loads(raw)


class Tail:
    """Reads the records appended since the last call (the runner polls it for awakeable ids)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def new_records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self._offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line]


@dataclass
class StepHistory:
    """What the ledger says about one (invocation, step)."""

    executions: list[str] = field(default_factory=list)
    acks: list[str] = field(default_factory=list)
    execs_after_first_ack: list[str] = field(default_factory=list)


def step_histories(records: list[dict[str, Any]]) -> dict[tuple[str, str], StepHistory]:
    histories: dict[tuple[str, str], StepHistory] = {}
    for r in records:
        if r["kind"] not in {"exec", "ack"}:
            continue
        h = histories.setdefault((r["inv"], r["step"]), StepHistory())
        if r["kind"] == "exec":
            if h.acks:
                h.execs_after_first_ack.append(r["token"])
            h.executions.append(r["token"])
        else:
            h.acks.append(r["token"])
    return histories


def step_violations(histories: dict[tuple[str, str], StepHistory]) -> list[str]:
    """The acknowledged steps that ran twice (see the module docstring for the rule)."""
    problems = []
    for (inv, step), h in sorted(histories.items()):
        if h.execs_after_first_ack:
            problems.append(
                f"{inv} step {step!r}: executed again after its result was acknowledged "
                f"(acked {h.acks[0]}, later executions {h.execs_after_first_ack})"
            )
        if len(set(h.acks)) > 1:
            problems.append(f"{inv} step {step!r}: acknowledged with different results {h.acks}")
        if h.acks and h.acks[0] not in h.executions:
            problems.append(f"{inv} step {step!r}: acknowledged {h.acks[0]}, never executed")
    return problems
