"""The engine: deterministic transitions (``core``) and the driver that commits them as a group
and releases their effects; messages to partitions owned elsewhere (``messages``)."""

from perdure.server.engine.core import AttemptRejected, Core, InvokeOutcome, InvokeRequest
from perdure.server.engine.driver import Engine, SystemClock
from perdure.server.engine.messages import (
    MessageError,
    NotOwned,
    OutboxMessage,
    Transport,
    decode_messages,
    encode_messages,
)

__all__ = [
    "AttemptRejected",
    "Core",
    "Engine",
    "InvokeOutcome",
    "InvokeRequest",
    "MessageError",
    "NotOwned",
    "OutboxMessage",
    "SystemClock",
    "Transport",
    "decode_messages",
    "encode_messages",
]
