"""The sync client's deadline backend, without sockets: every wait is cut to the time left."""

from __future__ import annotations

import time

import httpcore
import pytest

from perdure.client._deadline import DeadlineStream, bounded_by


class _Recording(httpcore.NetworkStream):
    def __init__(self) -> None:
        self.timeouts: list[float | None] = []

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.timeouts.append(timeout)
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.timeouts.append(timeout)


def test_without_a_deadline_the_phase_timeouts_pass_through() -> None:
    inner = _Recording()
    stream = DeadlineStream(inner)
    stream.read(10, 7.0)
    with bounded_by(None):
        stream.write(b"x", None)
    assert inner.timeouts == [7.0, None]


def test_waits_are_cut_to_the_time_left() -> None:
    inner = _Recording()
    stream = DeadlineStream(inner)
    with bounded_by(time.monotonic() + 0.5):
        stream.read(10, 30.0)
        stream.write(b"x", None)
        stream.read(10, 0.1)
    cut_read, cut_write, short_read = inner.timeouts
    assert cut_read is not None and 0.4 < cut_read <= 0.5
    assert cut_write is not None and 0.4 < cut_write <= 0.5
    assert short_read == 0.1
    stream.read(10, 30.0)  # the deadline ended with its block
    assert inner.timeouts[-1] == 30.0


def test_a_passed_deadline_is_a_timeout_not_a_non_blocking_call() -> None:
    inner = _Recording()
    stream = DeadlineStream(inner)
    with bounded_by(time.monotonic() - 0.01):
        with pytest.raises(httpcore.ReadTimeout):
            stream.read(10, 30.0)
        with pytest.raises(httpcore.WriteTimeout):
            stream.write(b"x", 30.0)
    assert inner.timeouts == []


def test_deadlines_nest_and_restore() -> None:
    inner = _Recording()
    stream = DeadlineStream(inner)
    with bounded_by(time.monotonic() + 100):
        with bounded_by(None):
            stream.read(10, 30.0)
        stream.read(10, 300.0)
    assert inner.timeouts[0] == 30.0
    second = inner.timeouts[1]
    assert second is not None and 99 < second <= 100
