"""perdure.protocol: Restate's service protocol V6, sans-IO (bytes in, objects out).

Shared by perdure's SDK and server: message framing and the message catalogue (``messages``),
the discovery manifest (``manifest``), identifiers (``ids``) and content-type negotiation
(``versions``). Nothing here touches sockets, clocks or disks.
"""

from perdure.protocol import messages
from perdure.protocol.errors import (
    FrameError,
    FrameTooLargeError,
    InvalidIdError,
    ManifestError,
    MessageDecodeError,
    ProtocolError,
    TruncatedFrameError,
    UnknownMessageTypeError,
)
from perdure.protocol.framing import (
    REQUESTED_ACK,
    Frame,
    FrameDecoder,
    decode_frames,
    decode_messages,
    encode_message,
    encode_messages,
)
from perdure.protocol.ids import AwakeableId, DeploymentId, InvocationId, partition_key_of
from perdure.protocol.manifest import (
    HandlerManifest,
    HandlerType,
    InputSpec,
    Manifest,
    OnMaxAttempts,
    Options,
    OutputSpec,
    ProtocolMode,
    ServiceManifest,
    ServiceType,
)
from perdure.protocol.messages import Message, MessageType
from perdure.protocol.versions import (
    PROTOCOL_VERSION,
    invocation_content_type,
    manifest_content_type,
    negotiate_manifest_version,
    parse_invocation_content_type,
    parse_manifest_content_type,
)

__all__ = [
    "PROTOCOL_VERSION",
    "REQUESTED_ACK",
    "AwakeableId",
    "DeploymentId",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameTooLargeError",
    "HandlerManifest",
    "HandlerType",
    "InputSpec",
    "InvalidIdError",
    "InvocationId",
    "Manifest",
    "ManifestError",
    "Message",
    "MessageDecodeError",
    "MessageType",
    "OnMaxAttempts",
    "Options",
    "OutputSpec",
    "ProtocolError",
    "ProtocolMode",
    "ServiceManifest",
    "ServiceType",
    "TruncatedFrameError",
    "UnknownMessageTypeError",
    "decode_frames",
    "decode_messages",
    "encode_message",
    "encode_messages",
    "invocation_content_type",
    "manifest_content_type",
    "messages",
    "negotiate_manifest_version",
    "parse_invocation_content_type",
    "parse_manifest_content_type",
    "partition_key_of",
]
