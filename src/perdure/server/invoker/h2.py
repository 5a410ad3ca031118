"""A small HTTP/2 cleartext (prior knowledge) client on asyncio and the ``h2`` state machine.

What the invoker needs and common clients lack: full duplex on one stream (keep writing the
request body while reading the response body), and many concurrent streams per connection.
``H2Pool`` keeps connections per authority and opens another one when a connection is full.

Writes are coalesced: the frames the state machine produces during one turn of the event loop
(headers, data and end-of-stream of many streams, acknowledgements of what was read) leave in one
socket write, not one write per frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

READ_CHUNK = 65536
WINDOW = 16 * 1024 * 1024


class H2Error(Exception):
    """The connection or stream failed (reset, closed, protocol error)."""


class H2Stream:
    def __init__(self, connection: H2Connection, stream_id: int) -> None:
        self._connection = connection
        self.stream_id = stream_id
        self._response: asyncio.Future[tuple[int, dict[str, str]]] = (
            connection._loop.create_future()
        )
        self._data: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
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

    def try_send(self, data: bytes) -> bool:
        """Send ``data`` now if flow control lets all of it go; False to use ``send``."""
        return not self.request_closed and self._connection.try_send_data(self.stream_id, data)

    async def close_request(self) -> None:
        """Half-close: end the request body (idempotent)."""
        if not self.request_closed:
            self.request_closed = True
            self._connection.end_stream(self.stream_id)

    def reset(self) -> None:
        self.request_closed = True
        self._connection.reset_stream(self.stream_id)

    # -- fed by the connection's reader ---------------------------------------------------------

    def _on_response(self, status: int, headers: dict[str, str]) -> None:
        if not self._response.done():
            self._response.set_result((status, headers))

    def _on_data(self, data: bytes) -> None:
        self._data.put_nowait(data)

    def _on_end(self) -> None:
        self.finished = True
        self._data.put_nowait(None)

    def _on_error(self, error: Exception) -> None:
        self.finished = True
        if not self._response.done():
            self._response.set_exception(error)
            self._response.exception()  # mark retrieved: the reader may never ask
        self._data.put_nowait(error)


class H2Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self._h2 = h2.connection.H2Connection(config=config)
        self._reader = reader
        self._writer = writer
        self._streams: dict[int, H2Stream] = {}
        self._window_open = asyncio.Event()
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._write_scheduled = False
        self._h2.initiate_connection()
        self._h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW})
        self._h2.increment_flow_control_window(WINDOW)
        self._flush()
        self._task = self._loop.create_task(self._read_loop())

    @classmethod
    async def open(cls, host: str, port: int) -> H2Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    @property
    def has_capacity(self) -> bool:
        limit = self._h2.remote_settings.max_concurrent_streams
        return not self.closed and self._h2.open_outbound_streams < min(limit, 1000)

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
        if self.closed:
            raise H2Error("connection closed")
        stream_id = self._h2.get_next_available_stream_id()
        all_headers = [
            (":method", method),
            (":scheme", "http"),
            (":authority", authority),
            (":path", path),
            *headers,
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

    def try_send_data(self, stream_id: int, data: bytes) -> bool:
        """Queue ``data`` for this loop turn's write if it fits the window in one frame."""
        if self.closed:
            return False
        try:
            window = self._h2.local_flow_control_window(stream_id)
        except h2.exceptions.StreamClosedError:
            return False
        if len(data) > min(window, self._h2.max_outbound_frame_size):
            return False
        self._h2.send_data(stream_id, data)
        self._flush()
        return True

    def end_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.end_stream(stream_id)
            self._flush()

    def reset_stream(self, stream_id: int) -> None:
        with contextlib.suppress(h2.exceptions.H2Error):
            self._h2.reset_stream(stream_id)
            self._flush()
        self._streams.pop(stream_id, None)

    def close(self) -> None:
        if not self.closed:
            self._fail(H2Error("connection closed"))
        self._task.cancel()

    # -- internals -----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Send what the state machine has produced, in one write at the end of this loop turn."""
        if not self._write_scheduled:
            self._write_scheduled = True
            self._loop.call_soon(self._write_now)

    def _write_now(self) -> None:
        self._write_scheduled = False
        data = self._h2.data_to_send()
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _drain(self) -> None:
        with contextlib.suppress(ConnectionError):
            await self._writer.drain()

    def _fail(self, error: Exception) -> None:
        self.closed = True
        for stream in self._streams.values():
            stream._on_error(error)
        self._streams.clear()
        self._window_open.set()
        with contextlib.suppress(Exception):
            self._writer.close()

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    raise H2Error("the deployment closed the connection")
                events = self._h2.receive_data(data)
                for event in events:
                    self._handle(event)
                self._flush()  # with what the streams woken now write in this turn
        except asyncio.CancelledError:
            self._fail(H2Error("connection closed"))
        except (OSError, h2.exceptions.ProtocolError, H2Error) as exc:
            self._fail(exc if isinstance(exc, H2Error) else H2Error(str(exc)))

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                headers = {str(k): str(v) for k, v in event.headers or []}
                stream._on_response(int(headers.get(":status", "0")), headers)
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
        elif isinstance(event, h2.events.StreamReset):
            stream = self._streams.pop(event.stream_id, None)
            if stream is not None:
                stream._on_error(H2Error(f"stream reset by the deployment ({event.error_code})"))
        elif isinstance(event, h2.events.WindowUpdated | h2.events.RemoteSettingsChanged):
            self._window_open.set()
        elif isinstance(event, h2.events.ConnectionTerminated):
            raise H2Error(f"the deployment ended the connection ({event.error_code})")


class H2Pool:
    """HTTP/2 connections per (host, port); a new one when all are at their stream limit."""

    def __init__(self) -> None:
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
        lock = self._opening.setdefault(key, asyncio.Lock())
        async with lock:
            conns = [c for c in self._connections.get(key, []) if not c.closed]
            self._connections[key] = conns
            conn = next((c for c in conns if c.has_capacity), None)
            if conn is None:
                conn = await H2Connection.open(host, port)
                conns.append(conn)
            return conn.request(method, authority, path, headers, end_stream=end_stream)

    def close(self) -> None:
        for conns in self._connections.values():
            for conn in conns:
                conn.close()
        self._connections.clear()
