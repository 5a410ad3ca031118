"""The black-hole proxy forwards both ways, and once it black-holes a connection nothing more
passes on it (while the socket stays open) but a new connection works."""

from __future__ import annotations

import asyncio

import pytest

from tests.chaos.proxy import BlackholeProxy


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"ping")
    await writer.drain()
    return await asyncio.wait_for(reader.read(1024), timeout=2)


@pytest.mark.asyncio
async def test_a_black_holed_connection_goes_silent_and_new_ones_pass() -> None:
    upstream = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = BlackholeProxy(upstream.sockets[0].getsockname()[1])
    await proxy.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await _roundtrip(reader, writer) == b"ping"
        assert proxy.blackhole() == 1
        with pytest.raises(TimeoutError):
            await _roundtrip(reader, writer)
        assert not reader.at_eof()  # silent, not closed
        reader2, writer2 = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await _roundtrip(reader2, writer2) == b"ping"
        assert proxy.live() == 1
        for w in (writer, writer2):
            w.close()
            await w.wait_closed()
    finally:
        await proxy.close()
        upstream.close()
        await upstream.wait_closed()
        await asyncio.sleep(0.1)  # the echo handlers see their EOF and close
