"""SIGKILL perdure's server while a ``ctx.run`` step executes (perdure SDK on perdure's server).

The guarantee: a step's result, once journaled, is never recomputed; a step whose result was not
yet stored when the server died runs again after the restart (at-least-once execution of the
step's code), and the invocation then continues with the result of the execution that was
journaled. Either way the journal holds the step's result exactly once and the invocation
completes exactly once, with that result.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from perdure.protocol import Frame, MessageType
from perdure.protocol import messages as m
from tests.server.conftest import Deployed, deployed
from tests.support.perdure_server import PerdureServer, wait_until

pytestmark = pytest.mark.interop
SERVICES = "tests.server.perdure_services:app"


def _journal(server: PerdureServer, invocation_id: str) -> list[Frame]:
    """The stored journal, read with a second (read-only) SQLite connection, or from
    PostgreSQL when the server stores there."""
    if "--store" in server.args:
        import psycopg

        url = server.args[server.args.index("--store") + 1]
        with psycopg.connect(url) as conn:
            rows = conn.execute(
                "SELECT type, flags, payload FROM journal WHERE id = %s ORDER BY idx",
                (invocation_id,),
            ).fetchall()
        return [Frame(MessageType(t), f, bytes(p)) for t, f, p in rows]
    db = sqlite3.connect(f"file:{server.data_dir / 'perdure.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT type, flags, payload FROM journal WHERE id = ? ORDER BY idx",
            (invocation_id,),
        ).fetchall()
    finally:
        db.close()
    return [Frame(MessageType(t), f, bytes(p)) for t, f, p in rows]


def _values(d: Deployed, kind: str, tag: str) -> list[str]:
    return [line.split(":", 1)[1] for line in d.effect_lines(kind) if line.startswith(f"{tag}:")]


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_sigkill_during_a_step_reruns_it_and_journals_one_result(
    tmp_path: Path, store: str
) -> None:
    with deployed(tmp_path, services=SERVICES, store=store) as d:
        server = d.server
        assert isinstance(server, PerdureServer)
        # "done" finishes its step first, then sleeps: its result is stored before the kill.
        plan = {"tag": "done", "step_seconds": 0.1, "sleep_seconds": 4}
        done = d.client.post("/Stepper/slow_step/send", json=plan).json()["invocationId"]
        wait_until(lambda: _values(d, "journaled", "done"), "the first step's result stored")
        # "mid" is inside its step when the server dies: its result cannot have been stored.
        plan = {"tag": "mid", "step_seconds": 4, "sleep_seconds": 0}
        mid = d.client.post("/Stepper/slow_step/send", json=plan).json()["invocationId"]
        wait_until(lambda: _values(d, "started", "mid"), "the second step started")
        assert not _values(d, "finished", "mid")

        server.kill()
        server.restart()

        outputs = {
            inv: d.client.get(f"/restate/invocation/{inv}/attach", timeout=60)
            for inv in (done, mid)
        }
        assert all(r.status_code == 200 for r in outputs.values()), outputs

        # journaled before the kill: never recomputed, and that value is the output
        (done_value,) = _values(d, "started", "done")
        assert outputs[done].json() == done_value
        # killed mid-step: executed again after the restart; the re-execution is journaled
        mid_runs = _values(d, "started", "mid")
        assert len(mid_runs) == 2
        assert outputs[mid].json() == mid_runs[1]

        for inv, value in ((done, done_value), (mid, mid_runs[1])):
            journal = _journal(server, inv)
            runs = [f for f in journal if f.type is MessageType.RUN]
            results = [f.message() for f in journal if f.type is MessageType.RUN_COMPLETION]
            assert len(runs) == 1 and len(results) == 1, [f.type.name for f in journal]
            result = results[0]
            assert isinstance(result, m.RunCompletion)
            assert result.value.content == f'"{value}"'.encode()
            assert sum(f.type is MessageType.OUTPUT for f in journal) == 1

        time.sleep(0.5)  # nothing runs a third time once the invocations completed
        assert len(_values(d, "started", "mid")) == 2
        statuses = {r["id"]: r["status"] for r in server.invocations()}
        assert statuses[done] == statuses[mid] == "completed"
