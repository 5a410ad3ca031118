"""Messages between partitions over HTTP: the engine's ``Transport`` between processes.

Client: ``HttpTransport.deliver`` posts one delivery (``encode_messages``) to
``POST /internal/partitions/{p}/messages`` on the admin listener of the target partition's
owner, signed as a peer's (``forwarding.Forwarder.internal``), and returns once the owner
answered 204: its ``Engine.accept`` applied the messages and made them durable. Anything else
raises, and the engine retries the delivery with back-off (the receiver drops duplicates).

Server: ``receive`` decodes the delivery and calls ``engine.accept``; 400 for a malformed one,
421 (misdirected) when this process does not own the partition (any more).
"""

from __future__ import annotations

from perdure.server.api.http import Request, Response
from perdure.server.engine.driver import Engine
from perdure.server.engine.messages import (
    MessageError,
    NotOwned,
    OutboxMessage,
    decode_messages,
    encode_messages,
)
from perdure.server.routing.forwarding import Forwarder, PeerError, json_error

DELIVERY_TIMEOUT = 30.0


class DeliveryFailed(Exception):
    """The owner could not be reached, or refused the delivery; the engine retries it."""


def messages_path(partition: int) -> str:
    return f"/internal/partitions/{partition}/messages"


class HttpTransport:
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    async def deliver(self, target_partition: int, messages: list[OutboxMessage]) -> None:
        peer = self.forwarder.router.owner(target_partition)
        if peer is None:
            raise DeliveryFailed(f"no other process owns partition {target_partition}")
        try:
            answer = await self.forwarder.internal(
                peer, "POST", messages_path(target_partition), encode_messages(messages),
                timeout=DELIVERY_TIMEOUT,
            )  # fmt: skip
        except PeerError as exc:
            raise DeliveryFailed(f"{peer.name}: {exc!r}") from None
        if answer.status != 204:
            raise DeliveryFailed(f"{peer.name} answered {answer.status}: {answer.text[:200]}")


async def receive(engine: Engine, partition: int, request: Request) -> Response:
    """``POST /internal/partitions/{partition}/messages``: apply a delivery here."""
    try:
        messages = decode_messages(request.body)
        if any(m.target != partition for m in messages):
            raise MessageError(f"a message for another partition than {partition}")
        if not messages:
            return Response(204)
        await engine.accept(messages[0].source, messages)
    except MessageError as exc:
        return json_error(400, f"bad delivery: {exc}", ingress=False)
    except NotOwned as exc:
        return json_error(421, f"{exc}; ask its owner", ingress=False)
    return Response(204)
