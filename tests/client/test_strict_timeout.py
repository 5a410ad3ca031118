"""The timeout bounds the whole exchange strictly: a server that stalls before its headers, in
the middle of them, or in the middle of the body costs the caller the timeout and no more, with
Client and AsyncClient alike, over real sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from perdure.client import AsyncClient, Client, TransportError
from tests.client.conftest import Runner
from tests.support.raw_deployment import raw_server

TIMEOUT = 0.5
SLACK = 0.3  # thread scheduling on a busy 2-core machine; the old bound was ~2x the timeout
STALL = 5.0  # how long the server stalls: far past any deadline
# Each stall comes 0.4 s into the exchange, so a wait that starts then and gets a whole read
# timeout of its own (the old behaviour) would end near 0.9 s, past TIMEOUT + SLACK.
LATE = 0.4

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 8\r\n\r\n"
STALLS = {
    "before-headers": [(LATE + STALL, b"")],
    "mid-headers": [(LATE, HEAD[:20]), (STALL, b"")],
    "mid-body": [(LATE, HEAD + b'"sl'), (STALL, b'ow..."')],
    "none": [(0.0, HEAD.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n") + b'"quick!"')],
}


def _serve(conn: socket.socket, stop: threading.Event) -> None:
    """Read one request head, then write what its path (/<stall>/h) asks for, pausing between."""
    conn.settimeout(10)
    head = b""
    while b"\r\n\r\n" not in head:
        data = conn.recv(4096)
        if not data:
            return
        head += data
    path = head.split(b" ", 2)[1].decode()
    stall = path.strip("/").split("/")[0]
    for pause, data in STALLS[stall]:
        if stop.wait(pause):
            return
        conn.sendall(data)
    if stall != "none":
        stop.wait(STALL)


@pytest.fixture
def stalling_server() -> Iterator[str]:
    with raw_server(_serve, join=True) as url:
        yield url


def _call(mode: str, url: str, stall: str, call: dict[str, Any], **client: Any) -> Any:
    """``stall``'s handler called once on a fresh client (``client`` kwargs, ``call`` kwargs)."""
    if mode == "sync":
        with Client(url, **client) as sync_client:
            return sync_client.service(stall, "h").request(1, **call)

    async def main() -> Any:
        async with AsyncClient(url, **client) as async_client:
            return await async_client.service(stall, "h").request(1, **call)

    return asyncio.run(main())


@pytest.mark.parametrize("stall", ["before-headers", "mid-headers", "mid-body"])
def test_a_stalling_server_costs_the_timeout_and_no_more(
    run: Runner, stalling_server: str, stall: str
) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        _call(run.mode, stalling_server, stall, {}, timeout=TIMEOUT)
    elapsed = time.monotonic() - started
    assert TIMEOUT - 0.05 <= elapsed < TIMEOUT + SLACK


def test_the_per_call_timeout_is_as_strict(run: Runner, stalling_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        _call(run.mode, stalling_server, "mid-body", {"timeout": TIMEOUT}, timeout=30)
    assert time.monotonic() - started < TIMEOUT + SLACK


def test_the_client_stays_usable_after_a_timeout(stalling_server: str) -> None:
    """The timed-out connection is dropped, not handed to the next call; and the deadline of
    one exchange does not leak into the next (which has none)."""
    with Client(stalling_server, timeout=TIMEOUT) as client:
        with pytest.raises(TransportError):
            client.service("mid-body", "h").request(1)
        assert client.service("none", "h").request(1) == "quick!"
        assert client.service("none", "h").request(1, timeout=None) == "quick!"
