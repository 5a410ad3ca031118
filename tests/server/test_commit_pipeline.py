"""The commit pipeline: the writer thread makes batches durable (fsync) while the loop applies
the next ones, which see the earlier writes; effects leave only once durable, in commit order."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from perdure.protocol import Manifest
from perdure.server.engine import registrations
from perdure.server.engine.driver import Engine
from perdure.server.engine.requests import InvokeRequest
from perdure.server.records import DeploymentRecord
from perdure.server.registry import Registry
from perdure.server.storage import Store
from tests.server.test_engine_core import MANIFEST
from tests.server.test_engine_driver import RecordingInvoker


class GatedStore(Store):
    """A store whose sync waits for a gate, and that records which thread syncs."""

    def __init__(self, path: Path) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.sync_threads: list[str] = []
        super().__init__(path)
        self.sync_threads.clear()  # the one at opening, before the engine runs

    def sync(self) -> None:
        self.sync_threads.append(threading.current_thread().name)
        assert self.gate.wait(10)
        super().sync()


def test_the_next_batch_runs_while_one_syncs_and_effects_wait_for_durability(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db"

    async def scenario() -> None:
        store = GatedStore(path)
        engine = Engine(store, Registry())
        record = DeploymentRecord("dp", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
                                  json.dumps(MANIFEST), 0)  # fmt: skip
        engine.run(
            lambda core: registrations.add_deployment(core, record, Manifest.from_json(MANIFEST))
        )
        await engine.durable()
        invoker = RecordingInvoker(path)
        engine.invoker = invoker

        store.gate.clear()  # batch 1's fsync hangs in the writer thread
        request = InvokeRequest("Greeter", "greet", idempotency_key="k")
        first = engine.run(lambda core: core.invoke(request)).invocation_id
        first_durable = engine.durable()
        await asyncio.sleep(0.1)
        assert invoker.committed() == 1  # committed (another connection sees it)...
        assert invoker.started == [] and not first_durable.done()  # ...but not released
        assert not engine.idle

        # batch 2 is applied and committed meanwhile, on top of batch 1's writes
        again = engine.run(lambda core: core.invoke(request))
        assert again.invocation_id == first  # the idempotency key found batch 1's invocation
        second = engine.run(lambda core: core.invoke(InvokeRequest("Greeter", "greet")))
        await asyncio.sleep(0.1)
        assert invoker.committed() == 2 and invoker.started == []

        store.gate.set()
        await engine.durable()
        assert first_durable.done()
        assert [i for i, _ in invoker.started] == [first, second.invocation_id]  # commit order
        assert engine.idle
        assert store.sync_threads
        assert all(name.startswith("perdure-writer") for name in store.sync_threads)
        invoker.reader.close()
        await engine.stop()
        engine.close()

    asyncio.run(scenario())
