"""A fixture that fails any socket use while a test runs (the harness must open none)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio


class SocketUsed(AssertionError):
    """Something opened a socket or a connection while the harness ran."""


@pytest_asyncio.fixture
async def no_sockets(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[str]]:
    """Make socket.socket, socket.create_connection and the running loop's connection and
    server methods raise (and record the attempt) for the rest of the test. Installed inside the
    running loop, whose own self-pipe exists already."""
    attempts: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            attempts.append(what)
            raise SocketUsed(f"{what} was called while the harness ran")

        return refused

    for name in ("socket", "create_connection", "create_server", "socketpair"):
        monkeypatch.setattr(socket, name, refuse(f"socket.{name}"))
    loop = asyncio.get_running_loop()
    for name in (
        "create_connection",
        "create_server",
        "create_unix_connection",
        "sock_connect",
        "create_datagram_endpoint",
    ):
        monkeypatch.setattr(loop, name, refuse(f"loop.{name}"))
    yield attempts
    assert attempts == [], f"sockets were used: {attempts}"
