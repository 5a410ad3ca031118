"""The server side of HTTP/2 (RFC 9113) as a sans-IO state machine: bytes in, events and bytes out.

``perdure.http_server`` serves its HTTP/2 connections with it. It does what a server needs and no
more: requests (HEADERS, CONTINUATION, DATA, trailers), responses, flow control both ways,
SETTINGS, PING, RST_STREAM, GOAWAY; no server push, priorities ignored (both allowed by the
RFC). HPACK is the ``hpack`` package's. The general-purpose ``h2`` library spent about a third of
a small request's CPU in the deployment (a frame object, an event object and several state
machine transitions per frame, generator chains per header); here a frame is parsed in place and
an event is a tuple.

Errors follow RFC 9113 section 5.4: a stream error resets that stream (RST_STREAM, and a
``RESET`` event when the app knows the stream), a connection error raises ``ConnectionFailed``
after queueing the GOAWAY that says why.
"""

from __future__ import annotations

import struct
from typing import Any

import hpack
import hpack.exceptions
from hpack.exceptions import HPACKDecodingError, InvalidTableSizeError, OversizedHeaderListError
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
# Flags
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# Error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL = 0x5, 0x6, 0x7, 0x8
COMPRESSION_ERROR, ENHANCE_YOUR_CALM = 0x9, 0xB
# Settings
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE = 1, 2, 3, 4
MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = 5, 6

# Events: (kind, stream id, payload)
REQUEST = 1
"""A new stream's request head: payload (headers, end_stream)."""
BODY = 2
"""Request body bytes: payload (data, end_stream); trailers end the body with b""."""
RESET = 3
"""The stream is gone (reset by the peer, or by us for its error): payload the error code."""
WINDOW = 4
"""Send windows grew (WINDOW_UPDATE, SETTINGS): blocked senders may go on."""
TERMINATED = 5
"""The peer sent GOAWAY: payload its error code."""

Event = tuple[int, int, Any]

DEFAULT_WINDOW = 65535
MAX_WINDOW = 2**31 - 1
FRAME_SIZE = 16384
"""The largest frame we accept (the default SETTINGS_MAX_FRAME_SIZE; we do not raise it)."""
MAX_HEADER_BLOCK = 256 * 1024
"""Bytes of one header block (HEADERS plus CONTINUATIONs) we buffer before refusing it."""
MAX_CONTINUATIONS = 64
"""CONTINUATION frames of one header block (16 KiB each: a megabyte)."""

_HEAD = struct.Struct(">HBBBL")
_UINT32 = struct.Struct(">L")
_SETTING = struct.Struct(">HL")


class ConnectionFailed(Exception):
    """A connection error: the GOAWAY is queued, the connection must close."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _StreamError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class CountingTable(HeaderTable):
    """HPACK's dynamic table, counting its changes: an encoding made while ``changes`` stays the
    same can be reused (``_CachingEncoder`` here, the invoker's request heads)."""

    changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.changes += 1  # a smaller table drops entries
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class _CachingEncoder(hpack.Encoder):
    """An HPACK encoder that remembers the blocks it encoded without changing its dynamic table
    (every field indexed): encoding the same head again gives the same bytes for as long as the
    table does not change. A server answers most requests with the same few response heads;
    each is then one dictionary lookup instead of a full encoding."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table: CountingTable = CountingTable()
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
        self._blocks_at = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self.header_table
        if type(headers) is not list or table.resized or not huffman:
            return super().encode(headers, huffman)
        if self._blocks_at != table.changes:
            self._blocks.clear()
            self._blocks_at = table.changes
        key = tuple(headers)
        block = self._blocks.get(key)
        if block is None:
            block = super().encode(headers, huffman)
            if table.changes == self._blocks_at and all(type(h) is tuple for h in key):
                self._blocks[key] = block
        return block


def _integer(data: bytes, pos: int, bits: int) -> tuple[int, int]:
    """An HPACK integer with a ``bits``-bit prefix at ``data[pos]``: (value, next position)."""
    mask = (1 << bits) - 1
    value = data[pos] & mask
    pos += 1
    if value < mask:
        return value, pos
    shift = 0
    while True:
        if pos >= len(data):
            raise HPACKDecodingError("truncated integer")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise HPACKDecodingError("integer too large")


def _string(data: bytes, pos: int) -> tuple[bytes, int]:
    """An HPACK string literal at ``data[pos]`` (Huffman-coded or not): (bytes, next position)."""
    huffman = data[pos] & 0x80
    length, pos = _integer(data, pos, 7)
    stop = pos + length
    if stop > len(data):
        raise HPACKDecodingError("truncated header block")
    raw = data[pos:stop]
    return (decode_huffman(raw) if huffman else raw), stop


class _Decoder(hpack.Decoder):
    """hpack's decoder with a faster ``decode`` for raw bytes: it walks the block by offset
    (hpack copies the rest of the block at every field) and returns plain tuples. The dynamic
    table, Huffman decoding and the limits are hpack's."""

    def decode(self, data: bytes, raw: bool = False) -> Any:
        if not raw:
            return super().decode(data, raw)
        data = bytes(data)
        table = self.header_table
        get = table.get_by_index
        headers: list[tuple[bytes, bytes]] = []
        size, limit = 0, self.max_header_list_size
        pos, end = 0, len(data)
        while pos < end:
            first = data[pos]
            if first & 0x80:  # indexed field
                index, pos = _integer(data, pos, 7)
                name, value = get(index)
            elif first & 0x40 or not first & 0x20:  # a literal, indexed (01) or not (000x)
                index, pos = _integer(data, pos, 6 if first & 0x40 else 4)
                if index:
                    name = get(index)[0]
                else:
                    name, pos = _string(data, pos)
                value, pos = _string(data, pos)
                if first & 0x40:
                    table.add(name, value)
            else:  # 001: dynamic table size update
                if headers:
                    raise HPACKDecodingError("table size update not at the start of the block")
                new_size, pos = _integer(data, pos, 5)
                if new_size > self.max_allowed_table_size:
                    raise InvalidTableSizeError("encoder exceeded max allowable table size")
                self.header_table_size = new_size
                continue
            headers.append((name, value))
            size += 32 + len(name) + len(value)
            if size > limit:
                raise OversizedHeaderListError(f"a header list larger than {limit}")
        self._assert_valid_table_size()
        return headers


class _Stream:
    __slots__ = ("local_closed", "recv_unacked", "recv_window", "remote_closed", "send_window")

    def __init__(self, send_window: int, recv_window: int) -> None:
        self.send_window = send_window
        self.recv_window = recv_window
        self.recv_unacked = 0
        self.remote_closed = False
        self.local_closed = False


class ServerConnection:
    """One HTTP/2 connection, server side. ``receive(data)`` returns the events the bytes made;
    ``data_to_send()`` what to write. ``window`` is our receive window (connection and each
    stream), ``max_streams`` the concurrent streams the client may open."""

    def __init__(self, *, window: int = DEFAULT_WINDOW, max_streams: int = 100) -> None:
        self.decoder = _Decoder()
        self.decoder.max_header_list_size = MAX_HEADER_BLOCK
        self.encoder = _CachingEncoder()
        self.streams: dict[int, _Stream] = {}
        self.highest_stream_id = 0
        """The highest stream id the client opened (or tried to)."""
        self.max_streams = max_streams
        self.window = window
        self.peer_window = DEFAULT_WINDOW
        """The client's SETTINGS_INITIAL_WINDOW_SIZE: each new stream's send window."""
        self.peer_max_frame = FRAME_SIZE
        self.send_window = DEFAULT_WINDOW
        """Connection-level: what we may still send."""
        self.recv_window = DEFAULT_WINDOW
        self.recv_unacked = 0
        self.out = bytearray()
        self._buffer = b""
        self._preface = False
        self._header_block: tuple[int, int, list[bytes]] | None = None
        """(stream id, flags, fragments) of a header block waiting for CONTINUATION frames."""
        self.goaway_sent = False
        settings = _SETTING.pack(MAX_CONCURRENT_STREAMS, max_streams)
        settings += _SETTING.pack(INITIAL_WINDOW_SIZE, window)
        self._frame(SETTINGS, 0, 0, settings)
        if window > DEFAULT_WINDOW:
            self._frame(WINDOW_UPDATE, 0, 0, _UINT32.pack(window - DEFAULT_WINDOW))
            self.recv_window = window

    # -- output ------------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes = b"") -> None:
        n = len(payload)
        self.out += _HEAD.pack(n >> 8, n & 0xFF, kind, flags, stream_id)
        self.out += payload

    def data_to_send(self) -> bytes:
        out = bytes(self.out)
        self.out.clear()
        return out

    def send_headers(self, stream_id: int, headers: list[tuple[bytes, bytes]], end: bool) -> None:
        """The response head (or 1xx, or trailers with ``end``). KeyError: stream gone."""
        stream = self.streams[stream_id]
        if stream.local_closed:
            raise KeyError(stream_id)
        block = self.encoder.encode(headers)
        size = self.peer_max_frame
        flags = END_STREAM if end else 0
        if len(block) <= size:
            self._frame(HEADERS, flags | END_HEADERS, stream_id, block)
        else:
            chunks = [block[i : i + size] for i in range(0, len(block), size)]
            self._frame(HEADERS, flags, stream_id, chunks[0])
            for chunk in chunks[1:-1]:
                self._frame(CONTINUATION, 0, stream_id, chunk)
            self._frame(CONTINUATION, END_HEADERS, stream_id, chunks[-1])
        if end:
            self._local_end(stream_id, stream)

    def send_window_of(self, stream_id: int) -> int:
        """Bytes that may be sent on the stream now (one frame at most). KeyError: stream gone."""
        stream = self.streams[stream_id]
        return min(self.send_window, stream.send_window, self.peer_max_frame)

    def send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        """One DATA frame; ``data`` must fit ``send_window_of``. KeyError: stream gone."""
        stream = self.streams[stream_id]
        if stream.local_closed:
            raise KeyError(stream_id)
        n = len(data)
        if n:
            self.send_window -= n
            stream.send_window -= n
        self._frame(DATA, END_STREAM if end else 0, stream_id, data)
        if end:
            self._local_end(stream_id, stream)

    def _local_end(self, stream_id: int, stream: _Stream) -> None:
        stream.local_closed = True
        if stream.remote_closed:
            del self.streams[stream_id]

    def reset(self, stream_id: int, code: int) -> None:
        """RST_STREAM, unless the stream is already gone."""
        if self.streams.pop(stream_id, None) is not None:
            self._frame(RST_STREAM, 0, stream_id, _UINT32.pack(code))

    def goaway(self, last_stream_id: int, code: int = NO_ERROR, debug: bytes = b"") -> None:
        self.goaway_sent = True
        self._frame(GOAWAY, 0, 0, _UINT32.pack(last_stream_id) + _UINT32.pack(code) + debug)

    # -- input -------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """The events of ``data`` (the connection's next bytes, the preface first).
        Raises ConnectionFailed (GOAWAY queued) when the client broke the protocol."""
        buf = self._buffer + data if self._buffer else data
        pos = 0
        if not self._preface:
            if len(buf) < len(PREFACE):
                self._buffer = buf
                return []
            if not buf.startswith(PREFACE):
                raise self._fail(PROTOCOL_ERROR, "no HTTP/2 connection preface")
            self._preface = True
            pos = len(PREFACE)
        events: list[Event] = []
        end = len(buf)
        while end - pos >= 9:
            hi, lo, kind, flags, stream_id = _HEAD.unpack_from(buf, pos)
            length = (hi << 8) | lo
            if length > FRAME_SIZE:
                raise self._fail(FRAME_SIZE_ERROR, f"a frame of {length} bytes")
            if end - pos - 9 < length:
                break
            payload = buf[pos + 9 : pos + 9 + length]
            pos += 9 + length
            stream_id &= 0x7FFFFFFF
            try:
                self._on_frame(kind, flags, stream_id, payload, events)
            except _StreamError as exc:
                self._stream_error(stream_id, exc.code, events)
        self._buffer = buf[pos:] if pos < end else b""
        return events

    def _fail(self, code: int, message: str) -> ConnectionFailed:
        if not self.goaway_sent:
            self.goaway(self.highest_stream_id, code, message.encode()[:200])
        return ConnectionFailed(code, message)

    def _stream_error(self, stream_id: int, code: int, events: list[Event]) -> None:
        if stream_id in self.streams:
            self.reset(stream_id, code)
            events.append((RESET, stream_id, code))
        else:
            self._frame(RST_STREAM, 0, stream_id, _UINT32.pack(code))

    def _on_frame(
        self, kind: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if self._header_block is not None and kind != CONTINUATION:
            raise self._fail(PROTOCOL_ERROR, "a header block interrupted")
        if kind == DATA:
            self._on_data(flags, stream_id, payload, events)
        elif kind in (HEADERS, CONTINUATION):
            self._on_headers(kind, flags, stream_id, payload, events)
        elif kind == WINDOW_UPDATE:
            self._on_window_update(stream_id, payload, events)
        elif kind == SETTINGS:
            self._on_settings(flags, stream_id, payload, events)
        elif kind == PING:
            if stream_id != 0:
                raise self._fail(PROTOCOL_ERROR, "PING on a stream")
            if len(payload) != 8:
                raise self._fail(FRAME_SIZE_ERROR, "PING must carry 8 bytes")
            if not flags & ACK:
                self._frame(PING, ACK, 0, payload)
        elif kind == RST_STREAM:
            if stream_id == 0:
                raise self._fail(PROTOCOL_ERROR, "RST_STREAM on stream 0")
            if len(payload) != 4:
                raise self._fail(FRAME_SIZE_ERROR, "RST_STREAM must carry 4 bytes")
            if stream_id > self.highest_stream_id:
                raise self._fail(PROTOCOL_ERROR, "RST_STREAM on an idle stream")
            if self.streams.pop(stream_id, None) is not None:
                events.append((RESET, stream_id, _UINT32.unpack(payload)[0]))
        elif kind == PRIORITY:
            if stream_id == 0:
                raise self._fail(PROTOCOL_ERROR, "PRIORITY on stream 0")
            if len(payload) != 5:
                raise _StreamError(FRAME_SIZE_ERROR, "PRIORITY must carry 5 bytes")
        elif kind == GOAWAY:
            if stream_id != 0:
                raise self._fail(PROTOCOL_ERROR, "GOAWAY on a stream")
            code = _UINT32.unpack_from(payload, 4)[0] if len(payload) >= 8 else PROTOCOL_ERROR
            events.append((TERMINATED, 0, code))
        elif kind == PUSH_PROMISE:
            raise self._fail(PROTOCOL_ERROR, "a client cannot push")
        # Unknown frame types are ignored (RFC 9113 5.5).

    def _on_headers(
        self, kind: int, flags: int, stream_id: int, payload: bytes, events: list[Event]
    ) -> None:
        if kind == HEADERS:
            if stream_id == 0:
                raise self._fail(PROTOCOL_ERROR, "HEADERS on stream 0")
            payload = self._unpad(flags, payload)
            if flags & PRIORITY_FLAG:
                if len(payload) < 5:
                    raise self._fail(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
                payload = payload[5:]
            if flags & END_HEADERS:
                self._on_header_block(stream_id, flags, payload, events)
            else:
                self._header_block = (stream_id, flags, [payload])
        elif kind == CONTINUATION:
            pending = self._header_block
            if pending is None or pending[0] != stream_id:
                raise self._fail(PROTOCOL_ERROR, "CONTINUATION without its HEADERS")
            pending[2].append(payload)
            # Bounded in bytes and in frames: empty CONTINUATION frames would otherwise keep a
            # connection busy forever (the "CONTINUATION flood").
            if len(pending[2]) > MAX_CONTINUATIONS or sum(map(len, pending[2])) > MAX_HEADER_BLOCK:
                raise self._fail(ENHANCE_YOUR_CALM, "header block too large")
            if flags & END_HEADERS:
                self._header_block = None
                self._on_header_block(stream_id, pending[1], b"".join(pending[2]), events)

    def _unpad(self, flags: int, payload: bytes) -> bytes:
        if not flags & PADDED:
            return payload
        if not payload or payload[0] >= len(payload):
            raise self._fail(PROTOCOL_ERROR, "padding longer than the frame")
        return payload[1 : len(payload) - payload[0]]

    def _on_header_block(
        self, stream_id: int, flags: int, block: bytes, events: list[Event]
    ) -> None:
        try:
            headers = self.decoder.decode(block, raw=True)
        except hpack.exceptions.OversizedHeaderListError:
            raise self._fail(ENHANCE_YOUR_CALM, "header list too large") from None
        except (hpack.exceptions.HPACKError, IndexError, TypeError, UnicodeDecodeError) as exc:
            raise self._fail(COMPRESSION_ERROR, f"bad header block: {exc}") from None
        end = bool(flags & END_STREAM)
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers
            if stream.remote_closed:
                raise _StreamError(STREAM_CLOSED, "HEADERS after the end of the request")
            if not end:
                raise _StreamError(PROTOCOL_ERROR, "trailers without END_STREAM")
            self._remote_end(stream_id, stream)
            events.append((BODY, stream_id, (b"", True)))
            return
        if stream_id % 2 == 0:
            raise self._fail(PROTOCOL_ERROR, f"a client opened even stream {stream_id}")
        if stream_id <= self.highest_stream_id:
            raise self._fail(STREAM_CLOSED, f"HEADERS on closed stream {stream_id}")
        self.highest_stream_id = stream_id
        if len(self.streams) >= self.max_streams:
            self._frame(RST_STREAM, 0, stream_id, _UINT32.pack(REFUSED_STREAM))
            return
        stream = _Stream(self.peer_window, self.window)
        stream.remote_closed = end
        self.streams[stream_id] = stream
        events.append((REQUEST, stream_id, (headers, end)))

    def _remote_end(self, stream_id: int, stream: _Stream) -> None:
        stream.remote_closed = True
        if stream.local_closed:
            del self.streams[stream_id]

    def _on_data(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id == 0:
            raise self._fail(PROTOCOL_ERROR, "DATA on stream 0")
        size = len(payload)
        self.recv_window -= size
        if self.recv_window < 0:
            raise self._fail(FLOW_CONTROL_ERROR, "DATA beyond the connection window")
        self.recv_unacked += size
        if self.recv_unacked >= self.window // 2:
            self._frame(WINDOW_UPDATE, 0, 0, _UINT32.pack(self.recv_unacked))
            self.recv_window += self.recv_unacked
            self.recv_unacked = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.remote_closed:
            if stream_id > self.highest_stream_id:
                raise self._fail(PROTOCOL_ERROR, f"DATA on idle stream {stream_id}")
            raise _StreamError(STREAM_CLOSED, f"DATA on closed stream {stream_id}")
        stream.recv_window -= size
        if stream.recv_window < 0:
            raise _StreamError(FLOW_CONTROL_ERROR, "DATA beyond the stream window")
        data = self._unpad(flags, payload)
        end = bool(flags & END_STREAM)
        if end:
            self._remote_end(stream_id, stream)
        else:
            stream.recv_unacked += size
            if stream.recv_unacked >= self.window // 2:
                self._frame(WINDOW_UPDATE, 0, stream_id, _UINT32.pack(stream.recv_unacked))
                stream.recv_window += stream.recv_unacked
                stream.recv_unacked = 0
        events.append((BODY, stream_id, (data, end)))

    def _on_window_update(self, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if len(payload) != 4:
            raise self._fail(FRAME_SIZE_ERROR, "WINDOW_UPDATE must carry 4 bytes")
        increment = _UINT32.unpack(payload)[0] & 0x7FFFFFFF
        if stream_id == 0:
            if increment == 0:
                raise self._fail(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > MAX_WINDOW:
                raise self._fail(FLOW_CONTROL_ERROR, "connection window beyond 2^31-1")
        else:
            stream = self.streams.get(stream_id)
            if stream is None:
                if stream_id > self.highest_stream_id:
                    raise self._fail(PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {stream_id}")
                return
            if increment == 0:
                raise _StreamError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                raise _StreamError(FLOW_CONTROL_ERROR, "stream window beyond 2^31-1")
        events.append((WINDOW, stream_id, increment))

    def _on_settings(self, flags: int, stream_id: int, payload: bytes, events: list[Event]) -> None:
        if stream_id != 0:
            raise self._fail(PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & ACK:
            if payload:
                raise self._fail(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            return
        if len(payload) % 6:
            raise self._fail(FRAME_SIZE_ERROR, "SETTINGS not a multiple of 6 bytes")
        for offset in range(0, len(payload), 6):
            setting, value = _SETTING.unpack_from(payload, offset)
            if setting == HEADER_TABLE_SIZE:
                self.encoder.header_table_size = value
            elif setting == ENABLE_PUSH:
                if value > 1:
                    raise self._fail(PROTOCOL_ERROR, "ENABLE_PUSH must be 0 or 1")
            elif setting == INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise self._fail(FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE beyond 2^31-1")
                delta = value - self.peer_window
                self.peer_window = value
                for stream in self.streams.values():
                    stream.send_window += delta
                    if stream.send_window > MAX_WINDOW:
                        raise self._fail(FLOW_CONTROL_ERROR, "a stream window beyond 2^31-1")
                events.append((WINDOW, 0, delta))
            elif setting == MAX_FRAME_SIZE:
                if not FRAME_SIZE <= value <= 2**24 - 1:
                    raise self._fail(PROTOCOL_ERROR, f"MAX_FRAME_SIZE {value} out of range")
                self.peer_max_frame = value
        self._frame(SETTINGS, ACK, 0)
