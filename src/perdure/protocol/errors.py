"""The errors of perdure.protocol, in one tree.

ProtocolError                 anything the wire format rejects (a ValueError)
├── FrameError                the 8-byte frame header or the frame stream is wrong
│   ├── TruncatedFrameError   the stream ended in the middle of a frame
│   └── FrameTooLargeError    a frame's length exceeds the configured limit
├── UnknownMessageTypeError   a type id that protocol V6 does not define
├── MessageDecodeError        a payload that is not a valid protobuf for its type
├── InvalidIdError            an invocation / awakeable / deployment id string or byte form
├── ManifestError             a discovery manifest that breaks the schema
└── IdentityError             a request identity key or signature that is unusable (identity.py)
"""

from __future__ import annotations


class ProtocolError(ValueError):
    """Base class: input that does not follow Restate's service protocol."""


class FrameError(ProtocolError):
    """The framing (8-byte header + payload) is malformed."""


class TruncatedFrameError(FrameError):
    """The stream ended before a complete frame was read."""


class FrameTooLargeError(FrameError):
    """A frame announces a payload larger than the decoder accepts."""


class UnknownMessageTypeError(ProtocolError):
    """A frame carries a message type id that this protocol version does not know."""

    def __init__(self, type_id: int) -> None:
        super().__init__(f"unknown message type id 0x{type_id:04X}")
        self.type_id = type_id


class MessageDecodeError(ProtocolError):
    """A frame's payload cannot be decoded as the message its type id names."""


class InvalidIdError(ProtocolError):
    """An identifier (invocation, awakeable, deployment) is not in its documented format."""


class ManifestError(ProtocolError):
    """A discovery manifest is missing a required field or has one of the wrong shape."""


class IdentityError(ProtocolError):
    """A request identity key or a request's signature is unusable; the message says why."""
