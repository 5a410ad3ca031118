"""The invoker's HTTP/2 client against tiny hand-driven peers: a peer that never speaks HTTP/2,
one that goes silent (PING unanswered), and one that ends the connection with GOAWAY while
streams are open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import h2.config
import h2.connection
import h2.events
import pytest

from perdure.server.invoker import h2 as client
from perdure.server.invoker.h2 import H2Connection, H2Error, H2Pool, H2Refused

pytestmark = pytest.mark.asyncio

Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def peer(handle: Peer) -> AsyncIterator[int]:
    writers: list[asyncio.StreamWriter] = []

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(ConnectionError):
            await handle(reader, writer)
        writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)
        await asyncio.sleep(0.05)  # let the aborted transports finish closing


async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts the TCP connection, reads everything, never answers."""
    while await reader.read(65536):
        pass


def h2_server() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    conn.initiate_connection()
    return conn


async def test_a_peer_that_never_speaks_http2_fails_the_connect_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client, "CONNECT_TIMEOUT", 0.3)
    async with peer(mute) as port:
        with pytest.raises(H2Error, match="no HTTP/2 SETTINGS"):
            await asyncio.wait_for(H2Connection.open("127.0.0.1", port), 5)


async def test_a_silent_connection_fails_its_streams_when_a_ping_goes_unanswered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(client, "PING_TIMEOUT", 0.3)

    async def settings_then_silence(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = h2_server()
        w.write(conn.data_to_send())
        while data := await reader.read(65536):
            conn.receive_data(data)  # acknowledges nothing from now on
            if conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
                return

    async with peer(settings_then_silence) as port:
        pool = H2Pool()
        stream = await pool.request("127.0.0.1", port, "POST", "/x", [])
        stream.suspect()
        with pytest.raises(H2Error, match="did not answer a PING"):
            await asyncio.wait_for(stream.response(), 5)
        second = await pool.request("127.0.0.1", port, "POST", "/x", [])
        assert second._connection is not stream._connection  # the dead one is not reused
        pool.close()


async def test_goaway_lets_accepted_streams_finish_and_refuses_the_others() -> None:
    async def goaway_after_first(reader: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conn = h2_server()
        w.write(conn.data_to_send())
        streams: list[int] = []
        while data := await reader.read(65536):
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    streams.append(event.stream_id)
            if len(streams) == 2:
                conn.close_connection(last_stream_id=streams[0])  # GOAWAY, NO_ERROR
                conn.state_machine.state = h2.connection.ConnectionState.SERVER_OPEN
                conn.send_headers(streams[0], [(":status", "200")])
                conn.send_data(streams[0], b"done", end_stream=True)
                streams.append(0)
            w.write(conn.data_to_send())

    async with peer(goaway_after_first) as port:
        pool = H2Pool()
        first = await pool.request("127.0.0.1", port, "POST", "/x", [])
        second = await pool.request("127.0.0.1", port, "POST", "/x", [])
        assert first._connection is second._connection
        with pytest.raises(H2Refused):
            await asyncio.wait_for(second.response(), 5)
        assert (await asyncio.wait_for(first.response(), 5))[0] == 200
        assert await first.read() == b"done"
        assert await first.read() is None
        third = await pool.request("127.0.0.1", port, "POST", "/x", [])
        assert third._connection is not first._connection  # nothing new on a draining one
        pool.close()
