"""The harness's clocks: a virtual clock that moves only when told, and the wall clock.

The engine, the invoker and the SDK read the same clock object, so with ``VirtualClock`` a
5-day sleep is a timer 5 days after the virtual "now"; it fires when the clock is moved there,
by hand (``advance``) or by the harness's auto-advance (see ``perdure.testing``). The clock
never moves backwards.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta


def datetime_of_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=UTC) + timedelta(milliseconds=ms % 1000)


class VirtualClock:
    """Milliseconds since the epoch that stand still until moved.

    ``auto_advance`` (default True) lets the harness jump to the next due timer whenever nothing
    is running; set it to False, or hold the clock with ``with clock.hold():``, to keep the time
    where it is while the test does things an invocation waits for.
    """

    def __init__(self, start: datetime | None = None) -> None:
        moment = start or datetime.now(tz=UTC)
        if moment.tzinfo is None:
            raise ValueError("the start of a virtual clock must be timezone-aware")
        self._now = int(moment.timestamp() * 1000)
        self._subscribers: list[Callable[[], None]] = []
        self._holds = 0
        self.auto_advance = True
        """Whether the harness may jump the clock to the next timer when nothing is running."""

    # -- reading ---------------------------------------------------------------------------------

    def now_ms(self) -> int:
        return self._now

    def now(self) -> datetime:
        """The virtual time, timezone-aware (UTC)."""
        return datetime_of_ms(self._now)

    @property
    def held(self) -> bool:
        """True while auto-advance may not move the clock (switched off or held)."""
        return not self.auto_advance or self._holds > 0

    # -- moving ----------------------------------------------------------------------------------

    def advance(self, by: timedelta) -> None:
        """Move forward by ``by``; timers that become due fire (``await harness.settle()`` to
        see their effects). Works whether or not the clock is held."""
        if by < timedelta(0):
            raise ValueError(f"a clock cannot go back (advance by {by})")
        self.move_to(self._now + int(by.total_seconds() * 1000))

    def move_to(self, at_ms: int) -> None:
        """Move to ``at_ms`` (milliseconds since the epoch), if that is later than now."""
        if at_ms <= self._now:
            return
        self._now = at_ms
        for on_move in list(self._subscribers):
            on_move()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Keep auto-advance from moving the clock inside the block (``advance`` still works)."""
        self._holds += 1
        try:
            yield
        finally:
            self._holds -= 1

    def subscribe(self, on_move: Callable[[], None]) -> None:
        """Call ``on_move`` whenever the clock moves (the engine wakes its timer loop)."""
        self._subscribers.append(on_move)

    def __repr__(self) -> str:
        return f"VirtualClock({self.now().isoformat()}, held={self.held})"


class WallClock:
    """Real time, for a harness without a virtual clock: reads like ``VirtualClock``; moving it
    is an error that says how to get one that moves."""

    auto_advance = False
    held = True

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def now(self) -> datetime:
        return datetime_of_ms(self.now_ms())

    def advance(self, by: timedelta) -> None:
        raise RuntimeError("this harness runs on real time; pass virtual_clock=True to move time")

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        yield  # real time never jumps

    def __repr__(self) -> str:
        return "WallClock()"
