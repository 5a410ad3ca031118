"""perdure.http2, the server side of HTTP/2 under ``perdure.serve`` and the servers' listeners,
driven by the ``h2`` library as the client (sans-IO on both sides: bytes handed across by hand).
"""

from __future__ import annotations

import struct
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest

from perdure import http2

REQUEST = [(":method", "POST"), (":scheme", "http"), (":path", "/invoke/S/h"),
           (":authority", "localhost"), ("content-type", "application/x")]  # fmt: skip
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/x")]


class Pair:
    """A client (h2) and a server (perdure.http2) connected by hand."""

    def __init__(self, **client_settings: int) -> None:
        self.server = http2.ServerConnection(window=1 << 20, max_streams=4)
        self.client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.client.initiate_connection()
        if client_settings:
            self.client.update_settings(
                {getattr(h2.settings.SettingCodes, k): v for k, v in client_settings.items()}
            )
        self.events: list[http2.Event] = []
        self.client_events: list[h2.events.Event] = []
        self.exchange()

    def to_server(self, data: bytes | None = None) -> list[http2.Event]:
        events = self.server.receive(self.client.data_to_send() if data is None else data)
        self.events += events
        return events

    def to_client(self) -> list[h2.events.Event]:
        events = self.client.receive_data(self.server.data_to_send())
        self.client_events += events
        return events

    def exchange(self) -> None:
        for _ in range(3):
            self.to_server()
            self.to_client()


def _kinds(events: list[Any]) -> list[Any]:
    return [e[0] if isinstance(e, tuple) else type(e).__name__ for e in events]


def test_a_request_and_its_response_cross_in_both_directions() -> None:
    pair = Pair()
    for stream_id in (1, 3, 5):  # the same response head three times: encoded once, then cached
        pair.client.send_headers(stream_id, REQUEST)
        pair.client.send_data(stream_id, b"hello")
        pair.client.end_stream(stream_id)
        events = pair.to_server()
        assert events[0][:2] == (http2.REQUEST, stream_id)
        headers, end = events[0][2]
        assert (b":path", b"/invoke/S/h") in headers and not end
        assert events[1:] == [(http2.BODY, stream_id, (b"hello", False)),
                              (http2.BODY, stream_id, (b"", True))]  # fmt: skip
        pair.server.send_headers(stream_id, RESPONSE, False)
        pair.server.send_data(stream_id, b"world", True)
        got = pair.to_client()
        assert _kinds(got) == ["ResponseReceived", "DataReceived", "StreamEnded"]
        assert got[0].headers == RESPONSE
        assert got[1].data == b"world"
        assert stream_id not in pair.server.streams  # both sides ended: forgotten


def test_a_header_block_split_over_continuation_frames_and_padded_data() -> None:
    pair = Pair()
    big = [*REQUEST, ("x-big", "v" * 40_000)]  # more than one frame: HEADERS + CONTINUATION
    pair.client.send_headers(1, big)
    pair.client.send_data(1, b"abc", pad_length=7, end_stream=True)
    events = pair.to_server()
    assert events[0][0] == http2.REQUEST
    assert (b"x-big", b"v" * 40_000) in events[0][2][0]
    assert events[1] == (http2.BODY, 1, (b"abc", True))


def test_trailers_end_the_request_body() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.client.send_data(1, b"x")
    pair.client.send_headers(1, [("x-trailer", "1")], end_stream=True)
    assert pair.to_server()[1:] == [(http2.BODY, 1, (b"x", False)), (http2.BODY, 1, (b"", True))]


def test_the_response_waits_for_the_clients_window() -> None:
    pair = Pair(INITIAL_WINDOW_SIZE=10)
    pair.client.send_headers(1, REQUEST, end_stream=True)
    pair.to_server()
    assert pair.server.send_window_of(1) == 10
    pair.server.send_headers(1, RESPONSE, False)
    pair.server.send_data(1, b"0123456789", False)
    assert pair.server.send_window_of(1) == 0
    (_, data) = pair.to_client()
    pair.client.acknowledge_received_data(data.flow_controlled_length, 1)
    events = pair.to_server()
    assert (http2.WINDOW, 1, 10) in events
    assert pair.server.send_window_of(1) == 10


def test_the_server_grants_its_window_back_as_it_receives() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    for _ in range(40):  # 640 KiB: more than half of the 1 MiB window
        pair.client.send_data(1, b"x" * 16384)
        pair.to_server()
    pair.to_client()
    assert pair.client.outbound_flow_control_window > 1 << 19
    assert pair.client.local_settings  # the connection is fine: no error event
    assert not [e for e in pair.client_events if isinstance(e, h2.events.ConnectionTerminated)]


def test_ping_is_answered_and_settings_acknowledged() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.client.update_settings({h2.settings.SettingCodes.MAX_FRAME_SIZE: 32768})
    pair.to_server()
    events = pair.to_client()
    assert [e.ping_data for e in events if isinstance(e, h2.events.PingAckReceived)] == [
        b"12345678"
    ]
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in events)
    assert pair.server.peer_max_frame == 32768


def test_a_reset_from_the_client_ends_the_stream_only() -> None:
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.client.send_headers(3, REQUEST)
    pair.to_server()
    pair.client.reset_stream(1)
    assert pair.to_server() == [(http2.RESET, 1, 0)]
    assert 3 in pair.server.streams and 1 not in pair.server.streams
    with pytest.raises(KeyError):
        pair.server.send_headers(1, RESPONSE, True)


def test_streams_beyond_the_limit_are_refused() -> None:
    pair = Pair()
    for stream_id in (1, 3, 5, 7):
        pair.client.send_headers(stream_id, REQUEST)
    assert [e[1] for e in pair.to_server()] == [1, 3, 5, 7]
    # A fifth at once (h2 would not send it: it knows the limit); static-table fields only.
    assert pair.to_server(_frame(http2.HEADERS, http2.END_HEADERS, 9, b"\x83\x86\x84")) == []
    out = pair.server.data_to_send()
    assert out == _frame(http2.RST_STREAM, 0, 9, struct.pack(">L", http2.REFUSED_STREAM))


def test_request_data_after_the_response_ended_is_still_read() -> None:
    """Legal HTTP/2: the stream is half-closed until the client ends it too."""
    pair = Pair()
    pair.client.send_headers(1, REQUEST)
    pair.to_server()
    pair.server.send_headers(1, RESPONSE, True)
    pair.to_client()
    pair.client.send_data(1, b"late", end_stream=True)
    assert pair.to_server() == [(http2.BODY, 1, (b"late", True))]
    assert 1 not in pair.server.streams


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (
        struct.pack(">L", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">L", stream_id)
        + payload
    )


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (_frame(http2.DATA, 0, 0, b"x"), http2.PROTOCOL_ERROR),  # DATA on stream 0
        (_frame(http2.DATA, 0, 99, b"x"), http2.PROTOCOL_ERROR),  # DATA on an idle stream
        (_frame(http2.PING, 0, 0, b"1234"), http2.FRAME_SIZE_ERROR),
        (_frame(http2.SETTINGS, 0, 0, b"12345"), http2.FRAME_SIZE_ERROR),
        (_frame(http2.SETTINGS, 0, 0, struct.pack(">HL", 4, 2**31)), http2.FLOW_CONTROL_ERROR),
        (_frame(http2.WINDOW_UPDATE, 0, 0, struct.pack(">L", 0)), http2.PROTOCOL_ERROR),
        (_frame(http2.CONTINUATION, 4, 1, b""), http2.PROTOCOL_ERROR),
        (_frame(http2.HEADERS, 4, 2, b"\x82"), http2.PROTOCOL_ERROR),  # even: a server's id
        (_frame(http2.HEADERS, 4, 1, b"\xff\xff\xff\xff"), http2.COMPRESSION_ERROR),
        (_frame(http2.PUSH_PROMISE, 4, 1, b"\x00\x00\x00\x02"), http2.PROTOCOL_ERROR),
        (_frame(http2.DATA, 0, 1, b"x" * 20000), http2.FRAME_SIZE_ERROR),
    ],
)
def test_a_broken_client_gets_a_goaway_saying_why(frame: bytes, code: int) -> None:
    pair = Pair()
    with pytest.raises(http2.ConnectionFailed):
        pair.to_server(frame)
    ended = [e for e in pair.to_client() if isinstance(e, h2.events.ConnectionTerminated)]
    assert [e.error_code for e in ended] == [code]


def test_a_bad_preface_is_refused() -> None:
    server = http2.ServerConnection()
    with pytest.raises(http2.ConnectionFailed):
        server.receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_request_heads_are_checked_as_http2_asks() -> None:
    from perdure.http_server import _Malformed, _request_head

    good = [(b":method", b"POST"), (b":scheme", b"http"), (b":path", b"/a?b=1"),
            (b":authority", b"h:1"), (b"cookie", b"a=1"), (b"x-id", b"1"),
            (b"cookie", b"b=2")]  # fmt: skip
    assert _request_head(good) == (
        "POST", b"/a?b=1", [(b"host", b"h:1"), (b"x-id", b"1"), (b"cookie", b"a=1; b=2")]
    )  # fmt: skip
    for bad in (
        [(b":method", b"GET"), (b":path", b"/"), (b"X-Upper", b"1")],
        [(b":method", b"GET"), (b":path", b"/"), (b"x-a", b"1\r\nx-b: 2")],
        [(b":method", b"GET"), (b":path", b"/"), (b"connection", b"close")],
        [(b":method", b"GET"), (b":path", b"/"), (b"te", b"gzip")],
        [(b":method", b"GET"), (b"x-a", b"1"), (b":path", b"/")],  # pseudo after regular
        [(b":method", b"GET"), (b":method", b"GET"), (b":path", b"/")],
        [(b":method", b"GET"), (b":path", b"/"), (b":status", b"200")],
        [(b":method", b"GET")],
        [(b":method", b"GET"), (b":path", b"/"), (b"", b"1")],
    ):
        with pytest.raises(_Malformed):
            _request_head(bad)


def test_a_continuation_flood_is_cut_off() -> None:
    pair = Pair()
    flood = _frame(http2.HEADERS, 0, 1, b"\x83")
    flood += _frame(http2.CONTINUATION, 0, 1, b"") * (http2.MAX_CONTINUATIONS + 1)
    with pytest.raises(http2.ConnectionFailed):
        pair.to_server(flood)
    ended = [e for e in pair.to_client() if isinstance(e, h2.events.ConnectionTerminated)]
    assert [e.error_code for e in ended] == [http2.ENHANCE_YOUR_CALM]


def test_the_hpack_decoder_agrees_with_hpacks_own() -> None:
    """perdure.http2's faster decode against hpack's, on the same blocks: random header sets
    encoded with and without Huffman coding, indexed and never indexed, across dynamic-table
    size changes (evictions included); then random bytes, which both must refuse alike."""
    import random

    import hpack

    rng = random.Random(7)
    names = [b"content-type", b"x-restate-invocation-id", b":path", b"accept", b"x-a", b"x-bb"]
    encoder, ours, theirs = hpack.Encoder(), http2._Decoder(), hpack.Decoder()
    for round_ in range(300):
        if round_ % 37 == 36:
            encoder.header_table_size = rng.choice([0, 64, 256, 4096])
        fields: list[Any] = []
        for _ in range(rng.randint(1, 8)):
            name = (
                rng.choice(names) if rng.random() < 0.7 else bytes(rng.randbytes(5)).hex().encode()
            )
            value = rng.choice(
                [b"", b"v", b"x" * rng.randint(1, 300), rng.randbytes(20).hex().encode()]
            )
            fields.append(
                hpack.NeverIndexedHeaderTuple(name, value) if rng.random() < 0.2 else (name, value)
            )
        block = encoder.encode(fields, huffman=rng.random() < 0.5)
        expected = [(bytes(n), bytes(v)) for n, v in theirs.decode(block, raw=True)]
        assert ours.decode(block, raw=True) == expected
        assert [(bytes(n), bytes(v)) for n, v in fields] == expected
    errors = (hpack.exceptions.HPACKError, IndexError, TypeError, UnicodeDecodeError)
    for _ in range(2000):
        junk = rng.randbytes(rng.randint(1, 12))
        fresh_ours, fresh_theirs = http2._Decoder(), hpack.Decoder()
        try:
            expected = [(bytes(n), bytes(v)) for n, v in fresh_theirs.decode(junk, raw=True)]
        except errors:
            with pytest.raises(errors):
                fresh_ours.decode(junk, raw=True)
        else:
            assert fresh_ours.decode(junk, raw=True) == expected
