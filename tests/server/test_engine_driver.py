"""The engine driver: many events, one commit; nothing visible before it is durable."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

from perdure.protocol import Frame, InvocationId, Manifest
from perdure.server.engine import registrations
from perdure.server.engine.core import InvokeRequest
from perdure.server.engine.driver import Engine
from perdure.server.engine.effects import AttemptStart
from perdure.server.records import DeploymentRecord
from perdure.server.registry import Registry
from perdure.server.storage import Store
from tests.server.test_engine_core import MANIFEST

MANIFEST_ = Manifest.from_json(MANIFEST)


class RecordingInvoker:
    def __init__(self, path: Path) -> None:
        self.reader = sqlite3.connect(path)
        self.started: list[tuple[InvocationId, int]] = []

    def committed(self) -> int:
        return int(self.reader.execute("SELECT COUNT(*) FROM invocations").fetchone()[0])

    def start(self, start: AttemptStart) -> None:
        self.started.append((start.invocation.id, self.committed()))

    def forward(self, invocation_id: InvocationId, frame: Frame) -> None:
        pass

    def abort(self, invocation_id: InvocationId) -> None:
        pass


def test_events_of_one_loop_iteration_commit_once_before_their_effects(tmp_path: Path) -> None:
    path = tmp_path / "db"

    async def scenario() -> None:
        store = Store(path)
        record = DeploymentRecord("dp", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
                                  json.dumps(MANIFEST), 0)  # fmt: skip
        engine = Engine(store, Registry())
        engine.run(lambda core: registrations.add_deployment(core, record, MANIFEST_))
        await engine.durable()
        invoker = RecordingInvoker(path)
        engine.invoker = invoker
        commits = 0
        commit = store.commit

        def counting_commit() -> bool:
            nonlocal commits
            if store.in_batch:
                commits += 1
            return commit()

        store.commit = counting_commit  # type: ignore[method-assign]
        ids = [
            engine.run(lambda core: core.invoke(InvokeRequest("Greeter", "greet"))).invocation_id
            for _ in range(50)
        ]
        assert invoker.started == [] and invoker.committed() == 0
        await engine.durable()
        assert commits == 1
        assert [i for i, _ in invoker.started] == ids
        assert all(count == 50 for _, count in invoker.started)  # durable before visible
        invoker.reader.close()
        store.close()

    asyncio.run(scenario())
