"""Applying the messages other partitions send (see ``messages``): each is one event of the
receiving engine, and the same event records the source partition's high-water seq, so a message
delivered again is dropped and every message is applied exactly once.

Answers a message asks for (a call's result known at once, an attach's result) go back to the
asking partition as messages of their own, sent by the receiving partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import Frame, MessageType
from perdure.protocol.messages import message_type
from perdure.server.engine import lifecycle, outbox
from perdure.server.engine import notifications as note
from perdure.server.engine.messages import (
    UNKNOWN_TARGET_GRACE_MS,
    AttachMessage,
    InvokeMessage,
    KillMessage,
    NotifyMessage,
    OutboxMessage,
    SignalMessage,
    TargetNotRegisteredYet,
)
from perdure.server.engine.requests import InvokeRequest, UnknownTarget
from perdure.server.records import NOT_FOUND, Result, Sink, Status

if TYPE_CHECKING:
    from perdure.server.engine.core import Core

T = MessageType


def accept(core: Core, message: OutboxMessage) -> bool:
    """Apply ``message`` unless it was applied before; True when it was applied now."""
    pk = core.partitions.key_range(message.target).start
    if message.seq <= core.store.dedup_seq(pk, message.source):
        return False
    core.store.set_dedup_seq(pk, message.source, message.seq)
    body = message.body
    with outbox.sending_as(core, body.invocation_id.partition_key):
        apply(core, body)
    return True


def skip(core: Core, message: OutboxMessage) -> None:
    """Record ``message`` as applied without applying it (applying it raised: it must not
    block every later message of its source)."""
    pk = core.partitions.key_range(message.target).start
    if message.seq > core.store.dedup_seq(pk, message.source):
        core.store.set_dedup_seq(pk, message.source, message.seq)


def apply(core: Core, body: object) -> None:
    match body:
        case InvokeMessage():
            invoke(core, body)
        case NotifyMessage():
            frame = Frame(message_type(body.frame_type), 0, body.payload)
            core._notify(body.invocation_id, frame, body.key)
        case SignalMessage():
            core.signal(body.invocation_id, index=body.index, name=body.name, result=body.result)
        case AttachMessage():
            attach(core, body)
        case KillMessage():
            core.kill(body.invocation_id)


def invoke(core: Core, body: InvokeMessage) -> None:
    req = InvokeRequest(
        service=body.service, handler=body.handler, key=body.key, body=body.body,
        headers=body.headers, idempotency_key=body.idempotency_key,
        execution_time=body.execution_time, send=body.send, caller=body.caller,
        invoked_by=body.invoked_by, invocation_id=body.invocation_id,
    )  # fmt: skip
    try:
        outcome = lifecycle.invoke(core, req)
    except UnknownTarget as exc:  # registered at the caller, not (yet) here
        if body.sent_at is not None and core.now() - body.sent_at < UNKNOWN_TARGET_GRACE_MS:
            raise TargetNotRegisteredYet(f"{exc} is not registered here (yet)") from None
        result: Result | None = Result.failure(404, f"the target {exc} is not found")
    else:
        result = outcome.result
    if result is not None and body.caller is not None:
        caller, cid = body.caller
        core._notify(caller, *note.completion(T.CALL_COMPLETION, cid, result))


def attach(core: Core, body: AttachMessage) -> None:
    target = core.store.get_invocation(body.invocation_id)
    kind = MessageType(body.notification_type)
    cid = body.completion_id
    if target is None:
        core._notify(body.caller, *note.completion(kind, cid, NOT_FOUND))
    elif target.status is Status.COMPLETED:
        core._notify(body.caller, *note.completion(kind, cid, target.result))
    elif kind is T.ATTACH_INVOCATION_COMPLETION:
        core.store.add_sink(target.id, Sink(body.caller, cid, kind))
    else:
        core._notify(body.caller, *note.completion(kind, cid, note.VOID))
