"""The clocks on their own: reading, moving, refusing to go back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from perdure.testing import VirtualClock, WallClock

START = datetime(2030, 1, 1, tzinfo=UTC)


def test_clocks_read_and_refuse_to_go_back() -> None:
    clock = VirtualClock(START)
    moves: list[int] = []
    clock.subscribe(lambda: moves.append(clock.now_ms()))
    clock.advance(timedelta(seconds=1.5))
    assert clock.now() == START + timedelta(seconds=1.5)
    clock.move_to(0)  # the past: ignored
    assert moves == [clock.now_ms()]
    with pytest.raises(ValueError, match="cannot go back"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        VirtualClock(datetime(2030, 1, 1))
    wall = WallClock()
    assert abs(wall.now().timestamp() - time.time()) < 5
    with pytest.raises(RuntimeError, match="virtual_clock=True"):
        wall.advance(timedelta(days=1))
