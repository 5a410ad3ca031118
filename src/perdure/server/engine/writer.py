"""The engine's writer thread: makes committed batches durable (``Storage.sync``: the fsync, or
the shipping to a networked store) off the event loop, one sync at a time.

One long-lived thread fed by a queue, not an executor: a sync is requested once per group commit
(hundreds of times a second), and an executor's futures, work items and wrapping cost the loop
more than the hand-over itself. The thread holds the GIL only to pick a request up and to hand
the outcome back with one ``call_soon_threadsafe``, so it rarely competes with the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable

Done = Callable[[BaseException | None], None]
"""Called on the loop after a sync: None when it succeeded, else what it raised."""


class WriterThread:
    def __init__(self, sync: Callable[[], None], name: str = "perdure-writer") -> None:
        self._sync = sync
        self._name = name
        self._requests: queue.SimpleQueue[tuple[asyncio.AbstractEventLoop, Done] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def request(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        """Sync once now (after the syncs requested before), then ``done`` on ``loop``."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    thread.start()
                    self._thread = thread
        self._requests.put((loop, done))

    def stop(self) -> None:
        """Finish the requested syncs, then end the thread (idempotent)."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._requests.put(None)
            thread.join()

    def _run(self) -> None:
        while (request := self._requests.get()) is not None:
            loop, done = request
            error: BaseException | None = None
            try:
                self._sync()
            except BaseException as exc:  # handed to the loop: it retries, and logs it
                error = exc
            # a closed loop (RuntimeError): nobody waits for this sync any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(done, error)
