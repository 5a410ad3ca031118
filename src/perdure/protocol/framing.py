"""Framing: every message travels as an 8-byte header followed by its protobuf payload.

The header is one big-endian u64: bits 63..48 the message type id, bit 47 the REQUESTED_ACK flag,
bits 46..32 reserved (written as 0, kept as read), bits 31..0 the payload length. A stream of
frames may be cut anywhere by the transport, so ``FrameDecoder`` buffers partial input.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from perdure.protocol.errors import FrameTooLargeError, TruncatedFrameError
from perdure.protocol.messages import (
    Message,
    MessageType,
    decode_payload,
    encode_payload,
    message_type,
    type_of,
)

HEADER_SIZE = 8
REQUESTED_ACK = 0x8000
"""Flag bit (in the 16 flag bits of the header): the sender wants a CommandAck (V5+) or a
ProposeRunCompletionAck (V7). perdure's SDK never sets it; perdure's server honours it."""

DEFAULT_MAX_FRAME_SIZE = 32 * 1024 * 1024
"""The official server's default message size limit (32 MiB)."""

_HEADER = struct.Struct(">HHI")


@dataclass(frozen=True, slots=True)
class Frame:
    """One framed message, undecoded: what a journal stores and replays byte for byte."""

    type: MessageType
    flags: int
    payload: bytes

    @property
    def requested_ack(self) -> bool:
        return bool(self.flags & REQUESTED_ACK)

    def message(self) -> Message:
        return decode_payload(self.type, self.payload)

    def to_bytes(self) -> bytes:
        return _HEADER.pack(self.type, self.flags, len(self.payload)) + self.payload

    @classmethod
    def of(cls, message: Message, *, flags: int = 0) -> Frame:
        return cls(type_of(message), flags, encode_payload(message))


def encode_header(type_id: int, flags: int, length: int) -> bytes:
    return _HEADER.pack(type_id, flags, length)


def decode_header(header: bytes) -> tuple[int, int, int]:
    """(type id, flags, payload length) of an 8-byte header."""
    if len(header) != HEADER_SIZE:
        raise TruncatedFrameError(f"a frame header is {HEADER_SIZE} bytes, got {len(header)}")
    type_id, flags, length = _HEADER.unpack(header)
    return type_id, flags, length


def encode_message(message: Message, *, flags: int = 0) -> bytes:
    """Header + payload of one message."""
    payload = encode_payload(message)
    return _HEADER.pack(type_of(message), flags, len(payload)) + payload


def encode_messages(messages: Iterable[Message]) -> bytes:
    return b"".join(encode_message(m) for m in messages)


class FrameDecoder:
    """Turns a byte stream, fed in chunks of any size, into frames.

    ``feed`` returns every frame completed by the new bytes; ``finish`` is called at end of stream
    and raises TruncatedFrameError if a frame was left incomplete. An unknown type id raises
    UnknownMessageTypeError as soon as its header is complete; a frame larger than
    ``max_frame_size`` raises FrameTooLargeError before its payload is buffered.
    """

    __slots__ = ("_buffer", "_max_frame_size")

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        self._buffer = bytearray()
        self._max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes received that do not yet form a complete frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        buffer = self._buffer
        buffer += data
        frames: list[Frame] = []
        offset = 0
        end = len(buffer)
        while end - offset >= HEADER_SIZE:
            type_id, flags, length = _HEADER.unpack_from(buffer, offset)
            kind = message_type(type_id)
            if length > self._max_frame_size:
                raise FrameTooLargeError(
                    f"{kind.name} frame of {length} bytes exceeds the limit of "
                    f"{self._max_frame_size} bytes"
                )
            start = offset + HEADER_SIZE
            if end - start < length:
                break
            frames.append(Frame(kind, flags, bytes(buffer[start : start + length])))
            offset = start + length
        if offset:
            del buffer[:offset]
        return frames

    def finish(self) -> None:
        """Declare end of stream; raises TruncatedFrameError if bytes of a frame are pending."""
        if self._buffer:
            pending = len(self._buffer)
            if pending < HEADER_SIZE:
                detail = f"{pending} of the {HEADER_SIZE} header bytes"
            else:
                type_id, _, length = _HEADER.unpack_from(self._buffer, 0)
                detail = (
                    f"{pending - HEADER_SIZE} of the {length} payload bytes "
                    f"of a 0x{type_id:04X} frame"
                )
            raise TruncatedFrameError(f"stream ended inside a frame: got {detail}")


def decode_frames(data: bytes, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> list[Frame]:
    """Every frame of a complete byte string (raises TruncatedFrameError if it stops short)."""
    decoder = FrameDecoder(max_frame_size)
    frames = decoder.feed(data)
    decoder.finish()
    return frames


def decode_messages(data: bytes) -> list[Message]:
    return [frame.message() for frame in decode_frames(data)]
