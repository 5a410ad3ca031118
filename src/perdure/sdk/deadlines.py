"""Many deadlines of one length on one timer.

Every attempt has two deadlines that almost never fire: the response head goes out
``HEAD_DELAY`` after the start if the handler has no output by then, and the request is read
to its end for at most ``DRAIN_TIMEOUT`` after the terminal message. One asyncio timer each
cost ~10 us per attempt (a heap push with Python-level comparisons, the cancelled handle left
in the heap): a tenth of a small invocation's CPU in the SDK. Here a deadline is a dictionary
entry, and one timer per ``Deadlines`` ticks every ``period`` while any is pending; a deadline
fires up to one period late.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable


class Deadlines:
    """Deadlines of ``delay`` seconds, checked every ``period`` seconds (at most ``delay``)."""

    def __init__(self, delay: float, period: float | None = None) -> None:
        self.delay = delay
        self.period = min(delay, period if period is not None else delay)
        self._due: dict[Hashable, tuple[float, Callable[[], None]]] = {}
        """Insertion order is deadline order: every deadline is ``delay`` after its add."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick: asyncio.TimerHandle | None = None

    def add(
        self, key: Hashable, callback: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Call ``callback`` ``delay`` seconds from now (on ``loop``, the running one) unless
        ``discard(key)`` comes first."""
        if loop is not self._loop:  # an app served again by another event loop
            self._due.clear()
            self._loop, self._tick = loop, None
        self._due.pop(key, None)
        self._due[key] = (loop.time() + self.delay, callback)
        if self._tick is None:
            self._tick = loop.call_later(self.period, self._check)

    def discard(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def __len__(self) -> int:
        return len(self._due)

    def _check(self) -> None:
        loop = self._loop
        if loop is None or asyncio.get_running_loop() is not loop:
            return  # the tick of a loop this app left
        self._tick = None
        now = loop.time()
        fired = []
        for key, (when, callback) in self._due.items():
            if when > now:
                break
            fired.append((key, callback))
        for key, callback in fired:
            entry = self._due.get(key)
            if entry is not None and entry[1] is callback:  # not discarded or renewed meanwhile
                del self._due[key]
                callback()
        if self._due:
            self._tick = loop.call_later(self.period, self._check)
