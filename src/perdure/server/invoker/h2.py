"""A small HTTP/2 cleartext (prior knowledge) client on asyncio and the ``h2`` state machine.

What the invoker needs and common clients lack: full duplex on one stream (keep writing the
request body while reading the response body), and many concurrent streams per connection.
``H2Pool`` keeps connections per authority and opens another one when a connection is full.

Writes are coalesced: the frames the state machine produces during one turn of the event loop
(headers, data and end-of-stream of many streams, acknowledgements of what was read) leave in one
socket write, not one write per frame.

A connection must never be trusted forever: a peer (or a proxy between) can go silent without
closing it. Opening one is bounded by ``CONNECT_TIMEOUT`` (TCP plus the peer's SETTINGS); a
connection quiet for ``KEEPALIVE_INTERVAL``, or one an attempt suspects (no response head yet),
is sent a PING, and no answer within ``PING_TIMEOUT`` declares it dead: its streams fail (the
engine retries their attempts) and the pool opens a fresh one. A GOAWAY with NO_ERROR drains:
the streams the peer accepted finish, the ones above its last stream id fail with
``H2Refused`` (the peer never saw them: safe to send again), and no new stream goes there.

A pool may be given a ``SendGate`` (a cluster node's lease gate): every socket write asks it
first, at the moment of writing, so that bytes produced while this node could still send do not
leave after it lost the right (a process paused between producing and writing them).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import hpack
from hpack.hpack import _to_bytes, encode_integer

from perdure.http2 import CountingTable
from perdure.server.invoker.mailbox import Mailbox

READ_CHUNK = 65536
WINDOW = 16 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
KEEPALIVE_INTERVAL = 20.0
PING_TIMEOUT = 5.0


class SendGate(Protocol):
    def hold(self, send: Callable[[], None]) -> bool:
        """True when nothing may be sent now; ``send`` is then called once it may."""
        ...


class H2Error(Exception):
    """The connection or stream failed (reset, closed, protocol error)."""


class H2Refused(H2Error):
    """The peer did not process this stream (REFUSED_STREAM, or above a GOAWAY's last stream
    id): sending the same request on another connection is safe."""


class _DrainingClient(h2.connection.H2Connection):
    """h2 treats a connection as closed once a GOAWAY arrives, even one with NO_ERROR, and then
    rejects the frames of the streams the peer still answers. Keep it open for those (no new
    stream is opened on a draining connection: ``H2Connection.draining``)."""

    def _receive_goaway_frame(self, frame: Any) -> Any:
        state = self.state_machine.state
        pending = self._data_to_send  # written at the end of this loop turn (coalesced writes)
        result = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = state
            # h2 drops what was not written yet; that may hold the head of a stream the peer
            # accepted, whose body would then reach it without one (a connection error).
            self._data_to_send = pending + self._data_to_send
        return result


_CACHED_FIELDS = 256
"""At most this many encoded header fields are kept (heads repeat a few dozen)."""


class _PlainEncoder(hpack.Encoder):
    """HPACK without Huffman coding: a few bytes more per new header value (the invocation id),
    no bit twiddling in Python on either side (the deployment decodes what we encode).

    A header field's encoding depends only on the dynamic table, which stops changing once the
    repeated fields (path, content type, authority) are in it. So each field's encoding is kept
    and reused until the table changes; a never-indexed field (a value new on every request)
    reuses its name's encoding. That is most of what encoding a request head costs."""

    def __init__(self) -> None:
        super().__init__()
        self._table = CountingTable()
        self.header_table = self._table
        self._fields: dict[tuple[Any, Any], bytes] = {}
        self._names: dict[Any, bytes] = {}
        self._table_changes = 0

    def encode(self, headers: Any, huffman: bool = False) -> bytes:
        table = self._table
        if table.resized or isinstance(headers, dict):  # rare: emits a table size update first
            self._forget()
            return super().encode(headers, huffman=False)
        if table.changes != self._table_changes:
            self._forget()
        fields, names = self._fields, self._names
        block = []
        for header in headers:
            if isinstance(header, hpack.HeaderTuple) and not header.indexable:
                value = _to_bytes(header[1])
                prefix = names.get(header[0]) or self._name_prefix(header[0])
                if prefix is None:
                    block.append(self.add((_to_bytes(header[0]), value), True, False))
                else:
                    block.append(prefix + bytes(encode_integer(len(value), 7)) + value)
                continue
            if len(header) > 2:  # (name, value, sensitive): not from our requests
                self._forget()
                return super().encode(headers, huffman=False)
            key = (header[0], header[1])
            encoded = fields.get(key)
            if encoded is None:
                changes = table.changes
                encoded = self.add((_to_bytes(key[0]), _to_bytes(key[1])),
                                   False, False)  # fmt: skip
                if table.changes != changes:  # added to the table: encoded otherwise from now
                    self._forget()
                elif len(fields) < _CACHED_FIELDS:
                    fields[key] = encoded
            block.append(encoded)
        return b"".join(block)

    def _name_prefix(self, name: Any) -> bytes | None:
        """A never-indexed field's encoding up to its value's length (kept per name); None
        when the name has no such form alone (an empty value the tables hold as a field)."""
        encoded = self.add((_to_bytes(name), b""), True, False)
        if encoded[-1] != 0 or encoded[0] & 0xF0 != 0x10:  # not a never-indexed literal
            return None
        prefix = encoded[:-1]  # the empty value is one byte: its length, 0
        if len(self._names) < _CACHED_FIELDS:
            self._names[name] = prefix
        return prefix

    def _forget(self) -> None:
        self._fields.clear()
        self._names.clear()
        self._table_changes = self._table.changes


# Header values new on every request (an invocation id, a signature) are sent as literals that are
# never indexed: in HPACK's dynamic table they would only push out the values that do repeat
# (path, content type, authority) and make every lookup in the table a longer linear scan.
_NEVER_INDEXED = frozenset({"x-restate-invocation-id", "x-restate-jwt-v1"})

# The request heads are built here (lowercase names, no connection headers) and only two response
# headers are read (:status, content-type): h2's per-header checks and text decoding cost more
# than the rest of a request's HTTP/2 handling.
_CONFIG = h2.config.H2Configuration(
    client_side=True,
    header_encoding=None,
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    validate_inbound_headers=False,
)


class H2Stream:
    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._response: asyncio.Future[tuple[int, dict[str, str]]] = (
            connection._loop.create_future()
        )
        self._data: Mailbox[bytes | Exception | None] = Mailbox(connection._loop)
        self.request_closed = False
        self.finished = False

    async def response(self) -> tuple[int, dict[str, str]]:
        """The response status and headers (lower-case names)."""
        return await self._response

    async def read(self) -> bytes | None:
        """The next chunk of the response body; None at its end."""
        item = await self._data.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def send(self, data: bytes) -> None:
        if self.request_closed:
            raise H2Error("the request body is already closed")
        await self._connection.send_data(self.stream_id, data)

    async def close_request(self) -> None:
        """Half-close: end the request body (idempotent)."""
        if not self.request_closed:
            self.request_closed = True
            self._connection.end_stream(self.stream_id)

    def reset(self) -> None:
        self.request_closed = True
        self._connection.reset_stream(self.stream_id)

    def suspect(self) -> None:
        """The response is late: check the connection is alive (a PING) now."""
        self._connection.suspect()

    # -- fed by the connection's reader ---------------------------------------------------------

    def _on_response(self, status: int, headers: dict[str, str]) -> None:
        if not self._response.done():
            self._response.set_result((status, headers))

    def _on_data(self, data: bytes) -> None:
        self._data.put(data)

    def _on_end(self) -> None:
        self.finished = True
        self._data.put(None)

    def _on_error(self, error: Exception) -> None:
        self.finished = True
        if not self._response.done():
            self._response.set_exception(error)
            self._response.exception()  # mark retrieved: the reader may never ask
        self._data.put(error)


class H2Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        gate: SendGate | None = None,
    ) -> None:
        self._gate = gate
        self._h2 = _DrainingClient(config=_CONFIG)
        self._h2.encoder = _PlainEncoder()
        self._reader = reader
        self._writer = writer
        self._streams: dict[int, H2Stream] = {}
        self._window_open = asyncio.Event()
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._write_scheduled = False
        self.draining = False
        """The peer sent GOAWAY: no new stream here; the accepted ones finish."""
        self._ready = asyncio.Event()  # the peer's first SETTINGS arrived
        self._last_received = time.monotonic()
        self._suspect = asyncio.Event()
        self._ping_ack = asyncio.Event()
        self._h2.initiate_connection()
        self._h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        self._h2.increment_flow_control_window(WINDOW)
        self._flush()
        self._task = self._loop.create_task(self._read_loop())
        self._keepalive_task = self._loop.create_task(self._keepalive())

    @classmethod
    async def open(cls, host: str, port: int, gate: SendGate | None = None) -> H2Connection:
        """Connect and wait for the peer's SETTINGS, within ``CONNECT_TIMEOUT``."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, port)
        except TimeoutError:
            raise H2Error(f"connecting to {host}:{port} timed out") from None
        connection = cls(reader, writer, gate)
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await connection._ready.wait()
        except TimeoutError:
            connection.close()
            message = f"{host}:{port} sent no HTTP/2 SETTINGS in {CONNECT_TIMEOUT:g} s"
            raise H2Error(message) from None
        if connection.closed:
            raise H2Error(f"{host}:{port} closed the connection at once")
        return connection

    @property
    def has_capacity(self) -> bool:
        if self.closed or self.draining:
            return False
        limit = min(self._h2.remote_settings.max_concurrent_streams, 1000)
        # h2 counts open streams by walking every stream it holds: only when it may matter
        return len(self._h2.streams) < limit or self._h2.open_outbound_streams < limit

    @property
    def idle(self) -> bool:
        return not self._streams

    def request(
        self,
        method: str,
        authority: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        *,
        end_stream: bool = False,
    ) -> H2Stream:
        """Open a stream and send the request head."""  # fmt: skip
        if self.closed or self.draining:
            raise H2Refused("connection closed")
        stream_id = self._h2.get_next_available_stream_id()
        all_headers = [
            (":method", method),
            (":scheme", "http"),
            (":authority", authority),
            (":path", path),
            *(
                hpack.NeverIndexedHeaderTuple(k, v) if k in _NEVER_INDEXED else (k, v)
                for k, v in headers
            ),
        ]
        stream = H2Stream(self, stream_id)
        self._streams[stream_id] = stream
        self._h2.send_headers(stream_id, all_headers, end_stream=end_stream)
        stream.request_closed = end_stream
        self._flush()
        return stream

    async def send_data(self, stream_id: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self.closed:
                raise H2Error("connection closed")
            try:
                window = self._h2.local_flow_control_window(stream_id)
            except h2.exceptions.StreamClosedError as exc:
                raise H2Error(f"stream {stream_id} closed") from exc
            size = min(window, self._h2.max_outbound_frame_size, len(view))
            if size <= 0:
                self._window_open.clear()
                await self._window_open.wait()
                continue
            self._h2.send_data(stream_id, bytes(view[:size]))
            view = view[size:]
            self._flush()
        await self._drain()

    def end_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.end_stream(stream_id)
            self._flush()

    def reset_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.reset_stream(stream_id)
            self._flush()
        self._streams.pop(stream_id, None)
        self._close_if_drained()

    def suspect(self) -> None:
        self._suspect.set()

    def close(self) -> None:
        if not self.closed:
            self._fail(H2Error("connection closed"))
        self._task.cancel()
        self._keepalive_task.cancel()

    # -- internals -----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what the state machine has produced, in one write at the end of this loop turn."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self._loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_scheduled = False
        if self._gate is not None and self._gate.hold(self._write_now):
            return  # the state machine keeps the bytes; they leave when the gate says so
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def _fail(self, error: Exception, *, abort: bool = False) -> None:
        self.closed = True
        for stream in self._streams.values():
            stream._on_error(error)
        self._streams.clear()
        self._window_open.set()
        self._ready.set()
        with contextlib.suppress(Exception):
            if abort:  # a dead peer: drop unsent bytes instead of waiting to flush them
                self._writer.transport.abort()
            else:
                self._write_now()  # what this loop turn produced goes out before the close
                self._writer.close()

    def _close_if_drained(self) -> None:
        if self.draining and not self._streams and not self.closed:
            self.close()

    async def _keepalive(self) -> None:
        """PING a quiet or suspected connection; no answer in time: the connection is dead."""
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(KEEPALIVE_INTERVAL):
                    await self._suspect.wait()
            suspected = self._suspect.is_set()
            self._suspect.clear()
            if self.closed:
                return
            if not suspected and time.monotonic() - self._last_received < KEEPALIVE_INTERVAL:
                continue
            self._ping_ack.clear()
            with contextlib.suppress(h2.exceptions.H2Error):
                self._h2.ping(b"perdure!")
                self._flush()
            try:
                async with asyncio.timeout(PING_TIMEOUT):
                    await self._ping_ack.wait()
            except TimeoutError:
                error = H2Error(f"the deployment did not answer a PING in {PING_TIMEOUT:g} s")
                self._fail(error, abort=True)
                self._task.cancel()
                return

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    raise H2Error("the deployment closed the connection")
                self._last_received = time.monotonic()
                events = self._h2.receive_data(data)
                for event in events:
                    self._handle(event)
                self._flush()  # with what the streams woken now write in this turn
        except asyncio.CancelledError:
            self._fail(H2Error("connection closed"))
        except (OSError, h2.exceptions.ProtocolError, H2Error) as exc:
            self._fail(exc if isinstance(exc, H2Error) else H2Error(str(exc)))
        finally:
            self._keepalive_task.cancel()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in event.headers or []
                    if isinstance(k, bytes) and isinstance(v, bytes)
                }
                status = headers.get(":status", "")
                stream._on_response(int(status) if status.isdigit() else 0, headers)
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                self._h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            stream = self._streams.get(event.stream_id)
            if stream is not None and event.data:
                stream._on_data(event.data)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                stream._on_end()
            self._close_if_drained()
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                refused = event.error_code == h2.errors.ErrorCodes.REFUSED_STREAM
                kind = H2Refused if refused else H2Error
                stream._on_error(kind(f"stream reset by the deployment ({event.error_code})"))
            self._close_if_drained()
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._ready.set()
            self._window_open.set()
        elif isinstance(event, h2.events.PingAckReceived):
            self._ping_ack.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._on_goaway(event)

    def _on_goaway(self, event: h2.events.ConnectionTerminated) -> None:
        if event.error_code != h2.errors.ErrorCodes.NO_ERROR:
            raise H2Error(f"the deployment ended the connection ({event.error_code})")
        self.draining = True  # the streams the peer accepted still carry their responses
        last = event.last_stream_id if event.last_stream_id is not None else 0
        for stream_id in [i for i in self._streams if i > last]:
            error = H2Refused("the deployment sent GOAWAY before seeing this stream")
            self._streams.pop(stream_id)._on_error(error)
        self._close_if_drained()


class H2Pool:
    """HTTP/2 connections per (host, port); a new one when all are at their stream limit."""

    def __init__(self) -> None:
        self.gate: SendGate | None = None
        """Asked before every write of the connections opened from now on."""
        self._connections: dict[tuple[str, int], list[H2Connection]] = {}
        self._opening: dict[tuple[str, int], asyncio.Lock] = {}

    async def request(
        self,
        host: str,
        port: int,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        *,
        end_stream: bool = False,
    ) -> H2Stream:
        """Open a stream on a connection with room for it."""  # fmt: skip
        key = (host, port)
        authority = f"{host}:{port}"
        for held in self._connections.get(key, ()):  # the usual case: no lock, no await
            if held.has_capacity:
                return self._stream(held, method, authority, path, headers, end_stream=end_stream)
        lock = self._opening.get(key)
        if lock is None:
            lock = self._opening[key] = asyncio.Lock()
        async with lock:  # one connection opened at a time per authority
            conns = [c for c in self._connections.get(key, []) if not c.closed]
            self._connections[key] = conns
            conn = next((c for c in conns if c.has_capacity), None)
            if conn is None:
                conn = await H2Connection.open(host, port, self.gate)
                conns.append(conn)
            return self._stream(conn, method, authority, path, headers, end_stream=end_stream)

    @staticmethod
    def _stream(
        conn: H2Connection,
        method: str,
        authority: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        *,
        end_stream: bool,
    ) -> H2Stream:
        try:
            return conn.request(method, authority, path, headers, end_stream=end_stream)
        except h2.exceptions.ProtocolError as exc:
            conn.close()
            raise H2Refused(f"the connection is no longer usable ({exc})") from exc

    def close(self) -> None:
        for conns in self._connections.values():
            for conn in conns:
                conn.close()
        self._connections.clear()
