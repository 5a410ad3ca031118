"""The HTTP server of perdure's processes: HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one
port, serving an ASGI app. ``perdure.serve`` serves deployments with it, ``perdure server`` and
``perdure dev`` their ingress and admin API.

A Restate server sends every attempt as a stream of one long-lived HTTP/2 connection, full duplex;
ingress clients send small request/response exchanges. A general-purpose ASGI server spends most of
a small handler's CPU on per-frame machinery (a task and a buffer per body, a socket write per
frame or per event); here a stream is one task running the app, its request body a queue, and
what is produced during one turn of the event loop (answers of many streams, flow-control
acknowledgements) leaves in one socket write. HTTP/2 framing is ``perdure.http2``'s (a
sans-IO server state machine); HTTP/1.1 is parsed here, one request at a time per connection,
the response buffered and written at once (request/response needs no more).

Graceful stop: stop accepting, end each HTTP/2 connection with a GOAWAY that names the last
stream served (those finish, later ones are refused: the client may send them again elsewhere),
let the running requests finish for up to the grace period, then cancel them (a Restate server
retries a cut attempt). ``max_requests`` ends an HTTP/2 connection the same way after that many
requests; by default a connection is never ended for its request count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from http import HTTPStatus
from typing import Any

from perdure import http2

log = logging.getLogger("perdure.http")

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Message, Receive, Send], Awaitable[None]]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
READ_CHUNK = 65536
WINDOW = 16 * 1024 * 1024
MAX_STREAMS = 1000
HIGH_WATER = 1024 * 1024
"""Bytes queued on a socket above which a stream's sender waits for the peer to read."""
H11_MAX_HEAD = 64 * 1024
KEEP_ALIVE = 75.0
LINGER = 5.0
"""Seconds a drained HTTP/2 connection waits for the client to close it."""
"""Seconds an idle HTTP/1.1 connection is kept open between two requests."""
NO_BODY_STATUS = frozenset({204, 304})


class _Work:
    """What a server is running: its connections and the app tasks of their requests."""

    def __init__(self, max_requests: int | None) -> None:
        self.connections: set[_H2Connection | _H11Connection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.stopping = False
        self.max_requests = max_requests

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


async def serve_asgi(
    app: ASGIApp, host: str, port: int, stop: asyncio.Event, *, grace_period: float,
    max_requests: int | None = None, sock: socket.socket | None = None,
) -> None:  # fmt: skip
    """Serve ``app`` on ``host:port`` (or on the listening socket ``sock``, which several
    processes may share) until ``stop`` is set, then stop gracefully."""
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, not {max_requests}")
    work = _Work(max_requests)

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A connection's task may be cancelled when the loop ends; asyncio's stream callback
        # would log a cancelled task's "exception" as a traceback, so it ends quietly.
        with contextlib.suppress(asyncio.CancelledError):
            await _connection(app, reader, writer, work)

    if sock is not None:
        server = await asyncio.start_server(accept, sock=sock, limit=READ_CHUNK)
    else:
        server = await asyncio.start_server(accept, host, port, limit=READ_CHUNK)
    log.info("serving on %s:%s (HTTP/2 cleartext and HTTP/1.1)", host, port)
    try:
        await stop.wait()
    finally:
        server.close()
        work.stopping = True
        for conn in list(work.connections):
            conn.stop_accepting()
        if work.tasks:
            await asyncio.wait(list(work.tasks), timeout=grace_period)
        for task in list(work.tasks):
            task.cancel()
        for conn in list(work.connections):
            conn.close()
        if work.tasks:
            await asyncio.wait(list(work.tasks), timeout=5)


async def _connection(
    app: ASGIApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, work: _Work
) -> None:
    """Tell HTTP/2 (its preface) from HTTP/1.1 by the first bytes, then serve the connection."""
    try:
        first = b""
        while len(first) < len(PREFACE) and PREFACE.startswith(first):
            chunk = await reader.read(READ_CHUNK)
            if not chunk:
                writer.close()
                return
            first += chunk
    except OSError:
        writer.close()
        return
    conn: _H2Connection | _H11Connection
    if first.startswith(PREFACE):
        conn = _H2Connection(app, reader, writer, work)
    else:
        conn = _H11Connection(app, reader, writer, work)
    work.connections.add(conn)
    try:
        await conn.run(first)
    except (OSError, asyncio.IncompleteReadError):
        pass
    finally:
        work.connections.discard(conn)
        conn.close()


def _scope(
    method: str, target: bytes, headers: list[tuple[bytes, bytes]], version: str,
    writer: asyncio.StreamWriter,
) -> Message:  # fmt: skip
    path, _, query = target.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": version,
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": writer.get_extra_info("peername"),
        "server": writer.get_extra_info("sockname"),
    }


# ---------------------------------------------------------------------------------------------
# HTTP/2
# ---------------------------------------------------------------------------------------------


class _H2Stream:
    """One request: the app reads its body from ``inbox`` and answers through the connection."""

    __slots__ = ("conn", "ended", "inbox", "started", "stream_id", "waiter")

    def __init__(self, conn: _H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        self.inbox: deque[Message] = deque()
        self.waiter: asyncio.Future[Message] | None = None
        self.started = False
        self.ended = False
        """The response is complete, or the stream was reset: the app's sends are dropped."""

    def push(self, message: Message) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            waiter.set_result(message)
        else:
            self.inbox.append(message)

    async def receive(self) -> Message:
        if self.inbox:
            return self.inbox.popleft()
        waiter: asyncio.Future[Message] = self.conn.loop.create_future()
        self.waiter = waiter
        message: Message = await waiter
        return message

    async def send(self, message: Message) -> None:
        if self.ended:
            return
        kind = message["type"]
        if kind == "http.response.start":
            self.started = True
            self.conn.send_headers(self.stream_id, _response_head(message))
        elif kind == "http.response.body":
            end = not message.get("more_body", False)
            if end:
                self.ended = True
            await self.conn.send_data(self.stream_id, message.get("body", b""), end)


# Headers HTTP/2 forbids (RFC 9113 8.2.2); an app written for HTTP/1.1 may still set them.
_CONNECTION_HEADERS = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)


def _response_head(message: Message) -> list[tuple[bytes, bytes]]:
    """The HTTP/2 response head of an ASGI ``http.response.start``: lower-case names, no
    connection headers. Done here once, instead of a generic per-header normalisation and
    validation of outbound headers (several generator passes per header)."""
    head = [(b":status", str(message["status"]).encode())]
    for raw, value in message.get("headers", ()):
        name = bytes(raw).lower()
        if name not in _CONNECTION_HEADERS:
            head.append((name, bytes(value).strip()))
    return head


# Headers are checked here (``_request_head``, ``_response_head``), in one pass each.


class _Malformed(Exception):
    """A request head HTTP/2 forbids (RFC 9113 8.2, 8.3): the stream is reset, PROTOCOL_ERROR."""


_BAD_NAME = re.compile(rb"[^!#$%&'*+\-.^_`|~0-9a-z]").search
"""A byte a field name may not hold in HTTP/2 (a token, lower case)."""
_BAD_VALUE = re.compile(rb"[\r\n\x00]").search
"""A byte no field value may hold (one regex search: three ``in`` tests cost 3x more)."""
_REQUEST_PSEUDO = frozenset({b":method", b":path", b":scheme", b":authority", b":protocol"})


def _request_head(
    fields: list[tuple[bytes, bytes]] | list[Any],
) -> tuple[str, bytes, list[tuple[bytes, bytes]]]:
    """(method, target, headers) of a decoded request header block, checked as RFC 9113 asks:
    lower-case token names, no CR/LF/NUL in values, pseudo-headers first, known and once each,
    :method and :path present (but for CONNECT), no connection-specific fields; split cookie
    fields joined back. ``:authority`` becomes ``host``."""
    method: bytes | None = None
    target: bytes | None = None
    headers: list[tuple[bytes, bytes]] = []
    pseudo: set[bytes] = set()
    regular = False
    cookies: list[bytes] | None = None
    # One search over all values and one over all regular names: a search per field costs more.
    if _BAD_VALUE(b"".join([field[1] for field in fields])):
        raise _Malformed("a line break or NUL in a field value")
    for name, value in fields:
        if name[:1] == b":":
            if regular or name not in _REQUEST_PSEUDO or name in pseudo:
                raise _Malformed(f"pseudo-header {bytes(name)[:40]!r} out of place")
            pseudo.add(name)
            if name == b":method":
                method = value
            elif name == b":path":
                target = value
            elif name == b":authority":
                headers.append((b"host", value))
            continue
        regular = True
        if not name:
            raise _Malformed("an empty field name")
        if name in _CONNECTION_HEADERS or (name == b"te" and value != b"trailers"):
            raise _Malformed(f"connection-specific field {bytes(name)[:40]!r}")
        if name == b"cookie":
            if cookies is None:
                cookies = []
            cookies.append(value)
        else:
            headers.append((name, value))
    if method is None or (method != b"CONNECT" and not target):
        raise _Malformed("no :method or :path")
    bad = _BAD_NAME(b"".join([name for name, _ in headers]))
    if bad is not None:
        raise _Malformed(f"a field name with {bad.group()!r}")
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    return method.decode("latin-1"), target or b"", headers


class _H2Connection:
    def __init__(
        self, app: ASGIApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, work: _Work
    ) -> None:
        self.app = app
        self.reader = reader
        self.writer = writer
        self.work = work
        self.loop = asyncio.get_running_loop()
        self.h2 = http2.ServerConnection(window=WINDOW, max_streams=MAX_STREAMS)
        self.streams: dict[int, _H2Stream] = {}
        self.window_open = asyncio.Event()
        self.accepting = True
        self.closed = False
        self.requests = 0
        self.goaway_last: int | None = None
        """The last stream id a GOAWAY let through; later streams are refused."""
        self._lingering: asyncio.TimerHandle | None = None
        self._write_scheduled = False

    async def run(self, first: bytes) -> None:
        data = first
        while data and not self.closed:
            try:
                events = self.h2.receive(data)
            except http2.ConnectionFailed as exc:
                log.warning("HTTP/2 protocol error, closing: %s", exc)
                self._write_now()  # the GOAWAY that says why
                return
            for event in events:
                self._handle(event)
            if self.h2.out:
                # Deferred: the app tasks just woken run first in this turn, and their answers
                # leave in the same write as the acknowledgements.
                self._flush()
            if self.closed:
                return
            data = await self.reader.read(READ_CHUNK)
        for stream in list(self.streams.values()):
            stream.ended = True
            stream.push({"type": "http.disconnect"})

    def _handle(self, event: http2.Event) -> None:
        kind, stream_id, payload = event
        if kind == http2.BODY:
            stream = self.streams.get(stream_id)
            if stream is not None:
                data, end = payload
                if data or end:
                    stream.push({"type": "http.request", "body": data, "more_body": not end})
        elif kind == http2.REQUEST:
            self._request(stream_id, payload[0], payload[1])
        elif kind == http2.RESET:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                stream.ended = True
                stream.push({"type": "http.disconnect"})
        elif kind == http2.WINDOW:
            self.window_open.set()
        elif kind == http2.TERMINATED:
            self.close()

    def _request(self, stream_id: int, fields: list[Any], end: bool) -> None:
        if not self.accepting or (self.goaway_last is not None and stream_id > self.goaway_last):
            self.h2.reset(stream_id, http2.REFUSED_STREAM)
            return
        self.requests += 1
        limit = self.work.max_requests
        if limit is not None and self.requests >= limit:
            # After this one, which is served; the streams after it that arrived in the same read
            # are refused (counted in highest_stream_id already).
            self._goaway(stream_id)
        try:
            method, target, headers = _request_head(fields)
        except _Malformed as exc:
            log.debug("malformed HTTP/2 request on stream %d: %s", stream_id, exc)
            self.h2.reset(stream_id, http2.PROTOCOL_ERROR)
            return
        stream = _H2Stream(self, stream_id)
        self.streams[stream_id] = stream
        if end:
            stream.push({"type": "http.request", "body": b"", "more_body": False})
        scope = _scope(method, target, headers, "2", self.writer)
        self.work.spawn(self._run_app(stream, scope))

    async def _run_app(self, stream: _H2Stream, scope: Message) -> None:
        try:
            await self.app(scope, stream.receive, stream.send)
        except asyncio.CancelledError:
            self._reset(stream.stream_id)
            raise
        except ConnectionAbortedError:
            # The app ends the request as a broken connection would (a proxy whose upstream
            # died mid-request): no answer, the stream is reset.
            stream.ended = True
            self._reset(stream.stream_id)
        except Exception:
            log.exception("the app failed on %s %s", scope["method"], scope["path"])
            if not stream.started:
                await stream.send({"type": "http.response.start", "status": 500, "headers": []})
        finally:
            if not stream.ended:
                if stream.started:
                    self._reset(stream.stream_id)
                else:
                    stream.ended = True
                    self.send_headers(stream.stream_id, [(b":status", b"500")], end=True)
            self.streams.pop(stream.stream_id, None)
            if self.goaway_last is not None and not self.streams:
                self._linger()

    # -- writing ---------------------------------------------------------------------------------

    def send_headers(
        self, stream_id: int, headers: list[tuple[bytes, bytes]], *, end: bool = False
    ) -> None:
        with contextlib.suppress(KeyError):  # reset meanwhile: nobody reads this answer
            self.h2.send_headers(stream_id, headers, end)
        self._flush()

    async def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        h2 = self.h2
        try:
            if len(data) <= h2.send_window_of(stream_id) and not self.closed:
                h2.send_data(stream_id, data, end)  # the usual case: it fits in one frame
            else:
                await self._send_in_frames(stream_id, data, end)
        except KeyError:
            return  # reset by the peer meanwhile: nobody reads this answer any more
        self._flush()
        transport = self.writer.transport
        if transport.get_write_buffer_size() > HIGH_WATER and not transport.is_closing():
            self._write_now()
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    async def _send_in_frames(self, stream_id: int, data: bytes, end: bool) -> None:
        """``data`` as frames no larger than the peer allows, waiting for its window."""
        view = memoryview(data)
        h2 = self.h2
        while view:
            if self.closed:
                return
            window = min(h2.send_window_of(stream_id), len(view))
            if window <= 0:
                self._write_now()
                self.window_open.clear()
                await self.window_open.wait()
                continue
            h2.send_data(stream_id, bytes(view[:window]), end and window == len(view))
            view = view[window:]
        if end and not data:
            h2.send_data(stream_id, b"", True)

    def _reset(self, stream_id: int) -> None:
        self.h2.reset(stream_id, http2.CANCEL)
        self._flush()

    def _flush(self) -> None:
        """Write what the state machine produced, once, at the end of this loop turn."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self.loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_scheduled = False
        data = self.h2.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)

    # -- stopping --------------------------------------------------------------------------------

    def stop_accepting(self) -> None:
        """Refuse new streams; close once the running ones are done."""
        self.accepting = False
        self._goaway()

    def _goaway(self, last: int | None = None) -> None:
        """A graceful end: GOAWAY names the last stream accepted (``last``, default: the last
        one received); those finish, later ones are refused; the connection closes when none is
        left."""
        if self.goaway_last is not None or self.closed:
            return
        self.goaway_last = self.h2.highest_stream_id if last is None else last
        self.h2.goaway(self.goaway_last)
        self._flush()
        if not self.streams:
            self._linger()

    def _linger(self) -> None:
        """After a GOAWAY, with every accepted stream answered: the client closes the
        connection once it has read the answers (closing first would cut the frames it still
        has in flight); close it here only if it does not."""
        if self._lingering is None:
            self._lingering = self.loop.call_later(LINGER, self.close)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._lingering is not None:
            self._lingering.cancel()
        if self.goaway_last is None and not self.h2.goaway_sent:  # not after an error GOAWAY
            self.h2.goaway(self.h2.highest_stream_id)
        self._write_now()
        for stream in self.streams.values():
            stream.ended = True
            stream.push({"type": "http.disconnect"})
        self.window_open.set()
        with contextlib.suppress(Exception):
            self.writer.close()


# ---------------------------------------------------------------------------------------------
# HTTP/1.1
# ---------------------------------------------------------------------------------------------


class _BadRequest(Exception):
    """The client's request is not HTTP/1.1 we accept: answered with 400, connection closed."""


class _H1Request:
    __slots__ = ("body", "close", "expect_continue", "headers", "method", "target", "version")

    def __init__(self, method: str, target: bytes, version: str,
                 headers: list[tuple[bytes, bytes]]) -> None:  # fmt: skip
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = b""
        self.close = False
        self.expect_continue = False


_TOKEN = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _parse_head(head: bytes) -> tuple[_H1Request, int, bool]:
    """The request line and headers (without the final blank line): the request, its
    Content-Length (-1: none) and whether the body is chunked."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if (
        len(parts) != 3
        or not parts[0]
        or not parts[1]
        or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0")
    ):
        raise _BadRequest(f"bad request line {lines[0][:80]!r}")
    if not parts[0] or not _TOKEN.issuperset(parts[0]):
        raise _BadRequest("bad method")
    version = "1.1" if parts[2] == b"HTTP/1.1" else "1.0"
    headers: list[tuple[bytes, bytes]] = []
    length, chunked, close, expect = -1, False, version == "1.0", False
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TOKEN.issuperset(name):
            raise _BadRequest(f"bad header line {line[:80]!r}")  # also obsolete line folding
        name, value = name.lower(), value.strip(b" \t")
        if b"\x00" in value:
            raise _BadRequest("NUL in a header value")
        headers.append((name, value))
        if name == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise _BadRequest("bad content-length")
            length = int(value)
        elif name == b"transfer-encoding":
            if value.lower() != b"chunked" or chunked:
                raise _BadRequest(f"unsupported transfer-encoding {value[:40]!r}")
            chunked = True
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            close = close or b"close" in tokens  # HTTP/1.0: always closed after (as h11 did)
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
    if chunked and (length >= 0 or version == "1.0"):
        raise _BadRequest("transfer-encoding with content-length (or HTTP/1.0)")
    request = _H1Request(parts[0].decode("latin-1"), parts[1], version, headers)
    request.close, request.expect_continue = close, expect and version == "1.1"
    return request, length, chunked


class _H11Connection:
    """HTTP/1.1 (and 1.0), one request at a time; the app's answer is buffered and sent with a
    content-length in one write. Parsed here rather than with ``h11``: a request/response on
    h11 cost ~120 us of CPU, about a tenth of a whole noop invocation in the server, for
    features (streaming bodies, trailers, upgrades) the ingress and admin API do not use.
    Pipelined requests are answered in order. An idle connection is closed after ``KEEP_ALIVE``
    (one timer per connection, not one per request)."""

    def __init__(
        self, app: ASGIApp, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, work: _Work
    ) -> None:
        self.app = app
        self.reader = reader
        self.writer = writer
        self.work = work
        self.busy = False
        self.closed = False
        self.buffer = bytearray()
        self.loop = asyncio.get_running_loop()
        self.last_active = self.loop.time()
        self.idle_timer: asyncio.TimerHandle | None = None
        self.client = writer.get_extra_info("peername")
        self.server = writer.get_extra_info("sockname")

    async def _more(self) -> None:
        data = await self.reader.read(READ_CHUNK)
        if not data:
            raise asyncio.IncompleteReadError(bytes(self.buffer), None)
        self.last_active = self.loop.time()
        self.buffer += data

    async def _request(self) -> _H1Request:
        buf = self.buffer
        while (end := buf.find(b"\r\n\r\n")) < 0:
            if len(buf) > H11_MAX_HEAD:
                raise _BadRequest("request head too large")
            await self._more()
        if end > H11_MAX_HEAD:
            raise _BadRequest("request head too large")
        request, length, chunked = _parse_head(bytes(buf[:end]))
        del buf[: end + 4]
        if request.expect_continue and (chunked or len(buf) < length):
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if chunked:
            request.body = await self._chunked()
        elif length > 0:
            while len(buf) < length:
                await self._more()
            request.body = bytes(buf[:length])
            del buf[:length]
        return request

    async def _chunked(self) -> bytes:
        buf, body = self.buffer, bytearray()
        while True:
            while (end := buf.find(b"\r\n")) < 0:
                if len(buf) > H11_MAX_HEAD:
                    raise _BadRequest("chunk header too large")
                await self._more()
            size_text = bytes(buf[:end]).split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise _BadRequest(f"bad chunk size {size_text[:20]!r}") from None
            if size == 0:
                del buf[: end + 2]
                while (trailer := buf.find(b"\r\n")) != 0:  # trailers: skipped
                    if trailer < 0:
                        if len(buf) > H11_MAX_HEAD:
                            raise _BadRequest("trailers too large")
                        await self._more()
                    else:
                        del buf[: trailer + 2]
                del buf[:2]
                return bytes(body)
            while len(buf) < end + 2 + size + 2:
                await self._more()
            if buf[end + 2 + size : end + 4 + size] != b"\r\n":
                raise _BadRequest("chunk without its CRLF")
            body += buf[end + 2 : end + 2 + size]
            del buf[: end + 4 + size]

    def _idle_check(self) -> None:
        self.idle_timer = None
        if self.closed:
            return
        quiet = self.loop.time() - self.last_active
        if not self.busy and quiet >= KEEP_ALIVE:
            self.close()
        else:
            self.idle_timer = self.loop.call_later(max(KEEP_ALIVE - quiet, 1.0), self._idle_check)

    async def run(self, first: bytes) -> None:
        self.buffer += first
        self.idle_timer = self.loop.call_later(KEEP_ALIVE, self._idle_check)
        task = asyncio.current_task()
        try:
            while not self.closed and not self.work.stopping:
                try:
                    request = await self._request()
                except _BadRequest as exc:
                    log.debug("bad HTTP/1.1 request: %s", exc)
                    self._write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"
                                b"connection: close\r\n\r\n")  # fmt: skip
                    return
                self.busy = True
                if task is not None:  # a graceful stop waits for (then cancels) the answer
                    self.work.tasks.add(task)
                try:
                    await self._answer(request)
                finally:
                    self.busy = False
                    self.last_active = self.loop.time()
                    if task is not None:
                        self.work.tasks.discard(task)
                if request.close:
                    return
        finally:
            if self.idle_timer is not None:
                self.idle_timer.cancel()

    async def _answer(self, request: _H1Request) -> None:
        path, _, query = request.target.partition(b"?")
        scope: Message = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.version,
            "method": request.method,
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": request.headers,
            "client": self.client,
            "server": self.server,
        }
        sent_body = False
        status = 500
        response_headers: list[tuple[bytes, bytes]] = []
        out = bytearray()
        done: asyncio.Future[None] = self.loop.create_future()

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": request.body, "more_body": False}
            await done
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status, response_headers
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                out.extend(message.get("body", b""))
                if not message.get("more_body", False) and not done.done():
                    done.set_result(None)

        try:
            await self.app(scope, receive, send)
        except ConnectionAbortedError:
            self.writer.close()  # no answer, as a broken connection (routing's proxying app)
            raise
        except Exception:
            log.exception("the app failed on %s %s", scope["method"], scope["path"])
            status, response_headers, out = 500, [], bytearray()
        finally:
            if not done.done():
                done.set_result(None)
        try:
            head = _response_head_h1(status, response_headers, len(out))
        except ValueError:
            log.error("the app answered %s %s with a bad header", scope["method"], scope["path"])
            head = _response_head_h1(500, [], 0)
            out = bytearray()
        if self.work.stopping or request.close:
            request.close = True
            head += b"connection: close\r\n"
        bodiless = status in NO_BODY_STATUS or request.method == "HEAD"
        self._write(head + b"\r\n" + (b"" if bodiless else bytes(out)))  # one write

    def _write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def stop_accepting(self) -> None:
        if not self.busy:
            self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.idle_timer is not None:
                self.idle_timer.cancel()
            with contextlib.suppress(Exception):
                self.writer.close()


def _response_head_h1(status: int, headers: list[tuple[bytes, bytes]], length: int) -> bytes:
    """The status line and headers (without the final blank line); ValueError for a header an
    HTTP/1.1 response cannot carry (a line break or NUL would split the response)."""
    try:
        reason = HTTPStatus(status).phrase.encode()
    except ValueError:
        reason = b""
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    for name, value in headers:
        lowered = bytes(name).lower()
        if lowered in (b"content-length", b"connection", b"transfer-encoding"):
            continue
        if not lowered or not _TOKEN.issuperset(lowered) or any(c in value for c in b"\r\n\x00"):
            raise ValueError(f"bad response header {bytes(name)[:40]!r}")
        lines.append(b"%s: %s\r\n" % (lowered, bytes(value)))
    if status not in NO_BODY_STATUS:
        lines.append(b"content-length: %d\r\n" % length)
    return b"".join(lines)
