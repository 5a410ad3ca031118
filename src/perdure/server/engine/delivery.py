"""Delivering the outbox: per (source partition, target partition), one loop that sends the
durable unacknowledged messages, oldest first, through the ``Transport`` (or straight to
``Engine.accept`` when this engine owns the target too), then deletes them; a failed delivery is
retried with back-off. One delivery in flight per pair and always from the oldest message is what
makes the receiver's high-water dedup exact (see ``messages``).

Only messages of batches that are durable are sent (``durable_seq``): a message must never be
applied elsewhere when the transition that sent it could still be lost in a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from perdure.server.engine.messages import OutboxMessage, Transport

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

log = logging.getLogger("perdure.server.engine")
FIRST_RETRY_DELAY = 0.05
MAX_RETRY_DELAY = 5.0
MAX_PER_DELIVERY = 500
"""Messages in one delivery (the rest follow once it is acknowledged)."""
LOG_EVERY = 30.0
"""Seconds between two warnings about one pair that keeps failing."""


class Deliveries:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: Transport | None = None
        self.durable_seq: dict[int, int] = {}
        """Per source partition: every message up to this seq is durable."""
        self._loops: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._stopping = False

    def durable(self, source: int, target: int, seq: int) -> None:
        """A batch with the message ``seq`` of ``source`` to ``target`` is durable: send it."""
        if seq > self.durable_seq.get(source, 0):
            self.durable_seq[source] = seq
        self.kick(source, target)

    def resend(self, sources: Iterable[int]) -> None:
        """Send again every stored message of ``sources`` (start, acquire): all of it durable."""
        engine = self.engine
        for source in sources:
            rows = engine.outbox_rows(source)
            if not rows:
                continue
            self.durable_seq[source] = max(self.durable_seq.get(source, 0), rows[-1][0])
            for target in sorted({target for _, target, _ in rows}):
                self.kick(source, target)

    def kick(self, source: int, target: int) -> None:
        if self._stopping or (source, target) in self._loops:
            return
        if source not in self.engine.owned:
            return
        loop = asyncio.get_running_loop()
        self._loops[(source, target)] = loop.create_task(self._deliver(source, target))

    def stop_sources(self, sources: Iterable[int]) -> list[asyncio.Task[None]]:
        """Stop the loops sending from ``sources`` (released); returns them to await."""
        gone = set(sources)
        tasks = []
        for pair in [pair for pair in self._loops if pair[0] in gone]:
            task = self._loops.pop(pair)
            task.cancel()
            tasks.append(task)
        for source in gone:
            self.durable_seq.pop(source, None)
        return tasks

    async def stop(self) -> None:
        self._stopping = True
        tasks = self.stop_sources(list({source for source, _ in self._loops}))
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def pending(self) -> int:
        """Pairs with messages still being delivered."""
        return len(self._loops)

    async def _deliver(self, source: int, target: int) -> None:
        engine = self.engine
        delay = FIRST_RETRY_DELAY
        failing_since: float | None = None
        logged_at = 0.0
        try:
            while not self._stopping and source in engine.owned:
                limit = self.durable_seq.get(source, 0)
                rows = [r for r in engine.outbox_rows(source, target) if r[0] <= limit]
                if not rows:
                    return
                rows = rows[:MAX_PER_DELIVERY]
                messages = [OutboxMessage.from_bytes(message) for _, _, message in rows]
                try:
                    if target in engine.owned:
                        await engine.accept(source, messages)
                    elif self.transport is None:
                        raise RuntimeError(f"no transport to reach partition {target}")
                    else:
                        await self.transport.deliver(target, messages)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    now = time.monotonic()
                    failing_since = failing_since or now
                    if now - logged_at >= LOG_EVERY:
                        logged_at = now
                        log.warning("delivering %d message(s) from partition %d to %d failed "
                                    "for %.1f s (retrying): %s", len(messages), source, target,
                                    now - failing_since, exc)  # fmt: skip
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_RETRY_DELAY)
                    continue
                delay, failing_since = FIRST_RETRY_DELAY, None
                engine.ack(source, [seq for seq, _, _ in rows])
        finally:
            if self._loops.get((source, target)) is asyncio.current_task():
                del self._loops[(source, target)]
