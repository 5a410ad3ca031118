"""Framing: the 8-byte header and the streaming decoder, fed in arbitrary chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure.protocol import (
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    FrameTooLargeError,
    MessageDecodeError,
    MessageType,
    TruncatedFrameError,
    UnknownMessageTypeError,
    decode_frames,
    decode_messages,
    encode_message,
    encode_messages,
)
from perdure.protocol import messages as m


def _sample_stream() -> list[m.Message]:
    start = m.StartMessage(id=bytes(range(24)), debug_id="inv_1x", known_entries=1, key="k")
    start.state_map.add(key=b"count", value=b"41")
    inp = m.InputCommand(value=m.Value(content=b'"Ann"'))
    sleep = m.SleepCommand(wake_up_time=1_700_000_000_000, result_completion_id=1)
    done = m.SleepCompletion(completion_id=1)
    done.void.SetInParent()
    return [start, inp, sleep, done, m.EndMessage()]


def test_header_is_type_flags_length_big_endian() -> None:
    assert encode_message(m.EndMessage()) == bytes.fromhex("0003000000000000")
    out = m.OutputCommand(value=m.Value(content=b"1"))
    assert encode_message(out)[:8] == bytes.fromhex("0401000000000005")


def test_requested_ack_is_the_top_bit_of_the_flags() -> None:
    frame_bytes = encode_message(m.RunCommand(result_completion_id=1), flags=REQUESTED_ACK)
    assert frame_bytes[:4] == bytes.fromhex("04118000")
    (frame,) = decode_frames(frame_bytes)
    assert frame.requested_ack
    assert frame.to_bytes() == frame_bytes
    assert not decode_frames(encode_message(m.RunCommand()))[0].requested_ack


def test_void_results_are_present_on_the_wire() -> None:
    done = m.SleepCompletion(completion_id=1)
    done.void.SetInParent()
    # completion_id=1 (tag 0x08), then void (field 4, length-delimited, empty): 0x22 0x00
    assert encode_message(done)[8:] == bytes.fromhex("0801 2200")


def test_several_messages_in_one_chunk() -> None:
    sent = _sample_stream()
    assert decode_messages(encode_messages(sent)) == sent


def test_byte_by_byte_feeding_yields_the_same_frames() -> None:
    data = encode_messages(_sample_stream())
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for i in range(len(data)):
        frames += decoder.feed(data[i : i + 1])
    decoder.finish()
    assert [f.type for f in frames] == [
        MessageType.START,
        MessageType.INPUT,
        MessageType.SLEEP,
        MessageType.SLEEP_COMPLETION,
        MessageType.END,
    ]
    assert b"".join(f.to_bytes() for f in frames) == data


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_chunking_yields_the_same_frames(cuts: list[int]) -> None:
    data = encode_messages(_sample_stream())
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    decoder = FrameDecoder()
    frames: list[Frame] = []
    for a, b in itertools.pairwise(points):
        frames += decoder.feed(data[a:b])
    decoder.finish()
    assert b"".join(f.to_bytes() for f in frames) == data
    assert decoder.buffered == 0


def test_truncated_header_is_reported_at_end_of_stream() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(bytes.fromhex("0400")) == []
    with pytest.raises(TruncatedFrameError, match="2 of the 8 header bytes"):
        decoder.finish()


def test_truncated_payload_is_reported_at_end_of_stream() -> None:
    data = encode_message(m.InputCommand(value=m.Value(content=b"hello")))
    with pytest.raises(TruncatedFrameError, match=r"of a 0x0400 frame"):
        decode_frames(data[:-2])


def test_unknown_message_type_is_rejected() -> None:
    with pytest.raises(UnknownMessageTypeError, match="0x040F") as info:
        FrameDecoder().feed(bytes.fromhex("040f000000000000"))
    assert info.value.type_id == 0x040F
    with pytest.raises(UnknownMessageTypeError, match="0xFC01"):
        decode_frames(bytes.fromhex("fc01000000000000"))


def test_oversized_frame_is_rejected_before_buffering_it() -> None:
    decoder = FrameDecoder(max_frame_size=16)
    with pytest.raises(FrameTooLargeError, match="17 bytes exceeds the limit of 16"):
        decoder.feed(bytes.fromhex("0400000000000011"))


def test_payload_that_is_not_protobuf_is_a_decode_error() -> None:
    (frame,) = decode_frames(bytes.fromhex("0400000000000002") + b"\x0a\xff")
    with pytest.raises(MessageDecodeError, match="INPUT"):
        frame.message()


def test_unknown_fields_survive_a_round_trip() -> None:
    # Field 99 (varint 7) is not part of V6; a V7 peer may send such fields.
    payload = bytes.fromhex("0801") + bytes.fromhex("980607")
    frame_bytes = bytes.fromhex("0411000000000005") + payload
    (frame,) = decode_frames(frame_bytes)
    assert encode_message(frame.message()) == frame_bytes
