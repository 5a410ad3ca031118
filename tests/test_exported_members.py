"""The public surface of each import root is curated: adding or removing a name is deliberate."""

from __future__ import annotations

import perdure
import perdure.protocol


def test_protocol_exports() -> None:
    assert sorted(perdure.protocol.__all__) == sorted(
        [
            "PROTOCOL_VERSION", "REQUESTED_ACK", "AwakeableId", "DeploymentId", "Frame",
            "FrameDecoder", "FrameError", "FrameTooLargeError", "HandlerManifest", "HandlerType",
            "InputSpec", "InvalidIdError", "InvocationId", "Manifest", "ManifestError", "Message",
            "MessageDecodeError", "MessageType", "OnMaxAttempts", "Options", "OutputSpec",
            "ProtocolError", "ProtocolMode", "ServiceManifest", "ServiceType",
            "TruncatedFrameError", "UnknownMessageTypeError", "decode_frames", "decode_messages",
            "encode_message", "encode_messages", "invocation_content_type",
            "manifest_content_type", "messages", "negotiate_manifest_version",
            "parse_invocation_content_type", "parse_manifest_content_type", "partition_key_of",
        ]
    )  # fmt: skip
    for name in perdure.protocol.__all__:
        assert hasattr(perdure.protocol, name), name


def test_root_exports() -> None:
    assert sorted(perdure.__all__) == sorted(
        [
            "App", "BytesSerde", "CallFuture", "Caller", "Context", "DurableFuture",
            "DurablePromise", "JsonSerde", "ObjectContext", "ObjectSharedContext", "Request",
            "RetryPolicy", "SendHandle", "Sender", "Serde", "Service", "TerminalError",
            "VirtualObject", "Workflow", "WorkflowContext", "WorkflowSharedContext",
            "__version__", "all", "any", "app", "as_completed", "first_completed", "gather",
            "serve", "serve_async",
        ]
    )  # fmt: skip
    for name in perdure.__all__:
        assert hasattr(perdure, name), name
    assert perdure.all is perdure.gather
