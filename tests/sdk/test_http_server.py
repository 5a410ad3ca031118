"""``perdure.serve``'s HTTP server on a real socket: HTTP/1.1 and HTTP/2 cleartext on one port,
many concurrent invocation streams on one HTTP/2 connection that stays open (a Restate server sends
every attempt over one), a stream reset by the client, and a graceful stop. About 3 s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio

import perdure
from perdure import Context
from perdure.protocol import Frame, FrameDecoder, InvocationId, MessageType
from perdure.protocol import messages as m
from perdure.sdk.deadlines import Deadlines
from perdure.server.invoker.h2 import H2Pool
from tests.support.processes import free_port

CT = "application/vnd.restate.invocation.v6"
DISCOVER = {"accept": "application/vnd.restate.endpointmanifest.v3+json"}

echo_service = perdure.Service("Echo")
release: asyncio.Event  # made per test, in the test's event loop


@echo_service.handler()
async def echo(ctx: Context, n: int) -> int:
    return n


@echo_service.handler()
async def slow(ctx: Context, n: int) -> int:
    await release.wait()
    return n


@echo_service.handler()
async def echo_text(ctx: Context, text: str) -> str:
    return text


app = perdure.app([echo_service])
pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def served() -> AsyncIterator[tuple[int, asyncio.Event, asyncio.Task[None]]]:
    global release
    port, stop, release = free_port(), asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(
        perdure.serve_async(app, host="127.0.0.1", port=port, shutdown=stop,
                            grace_period=timedelta(seconds=5))
    )  # fmt: skip
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            break
        except OSError:
            await asyncio.sleep(0.02)
    yield port, stop, task
    stop.set()
    await asyncio.wait_for(task, 10)


def _start(n: int | bytes) -> bytes:
    inv = InvocationId.new()
    start = m.StartMessage(id=inv.to_bytes(), debug_id=str(inv), known_entries=1,
                           partial_state=True)  # fmt: skip
    first = m.InputCommand(value=m.Value(content=n if isinstance(n, bytes) else b"%d" % n))
    return Frame.of(start).to_bytes() + Frame.of(first).to_bytes()


async def _invoke(pool: H2Pool, port: int, handler: str, n: int | bytes) -> bytes:
    """One attempt as the server makes it: Start + Input, read until End, then half-close."""
    stream = await pool.request("127.0.0.1", port, "POST", f"/invoke/Echo/{handler}",
                                [("content-type", CT), ("accept", CT)])  # fmt: skip
    await stream.send(_start(n))
    status, headers = await stream.response()
    assert (status, headers["content-type"]) == (200, CT)
    decoder, frames = FrameDecoder(), []
    while not any(f.type is MessageType.END for f in frames):
        chunk = await stream.read()
        assert chunk is not None, "the response ended before End"
        frames += decoder.feed(chunk)
    await stream.close_request()
    assert await stream.read() is None
    output = next(f.message() for f in frames if f.type is MessageType.OUTPUT)
    assert isinstance(output, m.OutputCommand)
    return output.value.content


async def test_http11_and_h2c_share_the_port(served: tuple[int, asyncio.Event, object]) -> None:
    port = served[0]
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base) as h11:
        resp = await h11.get("/discover", headers=DISCOVER)
        assert (resp.http_version, resp.json()["protocolMode"]) == ("HTTP/1.1", "REQUEST_RESPONSE")
        assert (await h11.get("/health")).status_code == 200
    async with httpx.AsyncClient(base_url=base, http1=False, http2=True) as h2c:
        resp = await h2c.get("/discover", headers=DISCOVER)
        assert (resp.http_version, resp.json()["protocolMode"]) == ("HTTP/2", "BIDI_STREAM")
        assert (await h2c.get("/nope")).status_code == 404


async def test_one_connection_carries_many_concurrent_attempts_past_1000(
    served: tuple[int, asyncio.Event, object],
) -> None:
    port = served[0]
    pool = H2Pool()
    limit = asyncio.Semaphore(64)

    async def one(n: int) -> bytes:
        async with limit:
            return await _invoke(pool, port, "echo", n)

    try:
        answers = await asyncio.gather(*(one(n) for n in range(1100)))
        assert answers == [b"%d" % n for n in range(1100)]
        conns = [c for cs in pool._connections.values() for c in cs]
        assert len(conns) == 1 and not conns[0].closed
    finally:
        pool.close()


async def test_bodies_larger_than_the_flow_control_windows_cross_both_ways(
    served: tuple[int, asyncio.Event, object],
) -> None:
    """9 MiB each way, twice on one connection: more than half of the server's 16 MiB receive
    window (it must grant it back, per stream and for the connection) and hundreds of frames
    per response."""
    port = served[0]
    pool = H2Pool()
    try:
        for fill in "ab":
            payload = b'"' + fill.encode() * (9 * 1024 * 1024) + b'"'
            assert await _invoke(pool, port, "echo_text", payload) == payload
    finally:
        pool.close()


async def test_a_request_never_ended_by_the_server_is_let_go_after_the_drain_timeout(
    served: tuple[int, asyncio.Event, object],
) -> None:
    """The answer ends once the server closes the request; a server that never does gets the
    end anyway after the drain timeout (30 s; 0.3 s here)."""
    port = served[0]
    saved, app._drains = app._drains, Deadlines(0.3, period=0.05)
    pool = H2Pool()
    try:
        stream = await pool.request("127.0.0.1", port, "POST", "/invoke/Echo/echo",
                                    [("content-type", CT), ("accept", CT)])  # fmt: skip
        await stream.send(_start(5))
        assert (await stream.response())[0] == 200
        decoder, frames = FrameDecoder(), []
        while not any(f.type is MessageType.END for f in frames):
            chunk = await stream.read()
            assert chunk is not None
            frames += decoder.feed(chunk)
        # No close_request(): the answer must still end.
        assert await asyncio.wait_for(stream.read(), 10) is None
    finally:
        app._drains = saved
        pool.close()


async def test_a_reset_stream_does_not_disturb_the_others(
    served: tuple[int, asyncio.Event, object],
) -> None:
    port = served[0]
    pool = H2Pool()
    try:
        stream = await pool.request("127.0.0.1", port, "POST", "/invoke/Echo/slow",
                                    [("content-type", CT), ("accept", CT)])  # fmt: skip
        await stream.send(_start(1))
        assert (await stream.response())[0] == 200
        stream.reset()
        assert await _invoke(pool, port, "echo", 7) == b"7"
    finally:
        release.set()
        pool.close()


async def test_stop_lets_running_attempts_finish_and_refuses_new_ones(
    served: tuple[int, asyncio.Event, asyncio.Task[None]],
) -> None:
    port, stop, task = served
    pool = H2Pool()
    try:
        running = asyncio.create_task(_invoke(pool, port, "slow", 5))
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.sleep(0.1)
        assert not task.done(), "the server stopped with an attempt still running"
        release.set()
        assert await asyncio.wait_for(running, 5) == b"5"
        await asyncio.wait_for(task, 5)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        pool.close()


# ---------------------------------------------------------------------------------------------
# HTTP/1.1 on a raw socket: what clients other than httpx may send
# ---------------------------------------------------------------------------------------------


async def _exchange(port: int, data: bytes) -> bytes:
    """Send ``data``, read until the server closes the connection (or 3 s of silence)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), 3):
            received += chunk
    except TimeoutError:
        pass
    writer.close()
    return received


def _outputs(response: bytes) -> list[bytes]:
    body = response.split(b"\r\n\r\n", 1)[1]
    return [f.message().value.content for f in FrameDecoder().feed(body)  # type: ignore[union-attr]
            if f.type is MessageType.OUTPUT]  # fmt: skip


async def test_http11_pipelined_requests_are_answered_in_order(
    served: tuple[int, asyncio.Event, object],
) -> None:
    request = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    last = b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    response = await _exchange(served[0], request + request + last)
    statuses = [
        line.split(b" ")[1] for line in response.split(b"\r\n") if line.startswith(b"HTTP/")
    ]
    assert statuses == [b"200", b"200", b"404"]
    assert b"connection: close" in response  # and the server closed it: _exchange returned


async def test_http11_chunked_body_and_expect_continue(
    served: tuple[int, asyncio.Event, object],
) -> None:
    """An invocation over HTTP/1.1 (request/response mode) with a chunked body and
    ``Expect: 100-continue``: the server says 100 Continue first, then answers the whole body."""
    body = _start(42)
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:5], body[5:]))
    head = (b"POST /invoke/Echo/echo HTTP/1.1\r\nhost: x\r\ncontent-type: " + CT.encode()
            + b"\r\ntransfer-encoding: chunked\r\nexpect: 100-continue\r\n"
            + b"connection: close\r\n\r\n")  # fmt: skip
    response = await _exchange(served[0], head + chunks + b"0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 ")
    assert _outputs(response.split(b"\r\n\r\n", 1)[1]) == [b"42"]


async def test_http10_is_answered_then_closed(served: tuple[int, asyncio.Event, object]) -> None:
    response = await _exchange(served[0], b"GET /health HTTP/1.0\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 200 ")
    assert b"connection: close\r\n" in response


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /health HTTP/1.1\r\n bad folding\r\n\r\n",
        b"POST /x HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\nabcd",
        b"POST /x HTTP/1.1\r\ncontent-length: -1\r\n\r\n",
        b"POST /x HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        b"POST /x HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "folding", "two-lengths", "negative-length", "gzip", "chunk-size"],
)
async def test_http11_bad_requests_get_400_and_a_closed_connection(
    served: tuple[int, asyncio.Event, object], request_bytes: bytes
) -> None:
    response = await _exchange(served[0], request_bytes)
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"connection: close" in response


async def test_a_client_breaking_http2_gets_one_goaway_with_the_reason_then_eof(
    served: tuple[int, asyncio.Event, object],
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served[0])
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    writer.write(preface + b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x")  # DATA on stream 0
    received = await asyncio.wait_for(reader.read(), 10)  # to EOF: the server closes
    writer.close()
    goaways, pos = [], 0
    while pos + 9 <= len(received):
        length = int.from_bytes(received[pos : pos + 3], "big")
        if received[pos + 3] == 7:  # GOAWAY: last stream id, error code
            goaways.append(int.from_bytes(received[pos + 13 : pos + 17], "big"))
        pos += 9 + length
    assert goaways == [1]  # PROTOCOL_ERROR, and no second GOAWAY contradicting it
