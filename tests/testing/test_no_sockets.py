"""The no_sockets guard the harness tests run under does fail on socket use (so their passing
proves the harness opens none)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.support.no_sockets import SocketUsed


@pytest.mark.asyncio
async def test_the_guard_refuses_sockets_and_connections(no_sockets: list[str]) -> None:
    with pytest.raises(SocketUsed):
        socket.socket()
    with pytest.raises(SocketUsed):
        await asyncio.open_connection("127.0.0.1", 9)
    with pytest.raises(SocketUsed):
        socket.create_connection(("127.0.0.1", 9))
    assert no_sockets == ["socket.socket", "loop.create_connection", "socket.create_connection"]
    no_sockets.clear()  # seen; the guard's own check at teardown would fail otherwise
