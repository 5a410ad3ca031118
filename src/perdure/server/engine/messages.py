"""Messages between partitions, and the ``Transport`` that carries them.

A transition that touches an invocation of a partition its engine does not own writes a message
to the *sender's* durable outbox instead (in the same batch as the rest of the transition). Once
the batch is durable the engine hands the messages to a ``Transport``, which delivers them to the
owner of the target partition; that engine applies them (``Engine.accept``) as events of its own
batch, records the sender partition's high-water sequence number in the same batch, and answers
only once that batch is durable. Then the sender deletes the rows. So a message is applied
exactly once however often it is delivered.

Each message carries its source partition and a sequence number, increasing per source partition
(one sequence shared by every target). The receiver drops a message whose seq is not above the
high-water mark it recorded for that source. That is exact because the sender always delivers
a (source, target) stream from its oldest unacknowledged message, in order, one delivery in flight
at a time: when a delivery starting at seq ``k`` is sent, everything before ``k`` was applied.

The wire form is JSON (bytes base64): ``encode_messages``/``decode_messages`` for one delivery.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from perdure.protocol import InvocationId
from perdure.server.records import Result


class MessageError(ValueError):
    """A delivery that is not a list of well-formed messages (the HTTP API answers 400)."""


class NotOwned(Exception):
    """A message reached an engine that does not own its target partition (any more): the
    sender keeps it and retries (the router may know the new owner by then)."""

    def __init__(self, partition: int) -> None:
        super().__init__(f"partition {partition} is not owned here")
        self.partition = partition


# -- message bodies ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvokeMessage:
    """Create (or find again: idempotency key, workflow run) an invocation; the id was chosen by
    the caller. With ``caller``, the caller's call completion comes back as a NotifyMessage."""

    invocation_id: InvocationId
    service: str
    handler: str
    key: str = ""
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    idempotency_key: str | None = None
    execution_time: int | None = None
    send: bool = False
    caller: tuple[InvocationId, int] | None = None
    invoked_by: str | None = None
    sent_at: int | None = None
    """When the caller sent it (ms): a target the receiver does not know yet is waited for
    (the registry reaches every process a little later) until ``UNKNOWN_TARGET_GRACE_MS``."""


UNKNOWN_TARGET_GRACE_MS = 60_000


class TargetNotRegisteredYet(Exception):
    """An invoke for a service/handler this engine's registry does not have (yet): the delivery
    fails and is retried, until the grace period since it was sent is over (then the call fails
    with 404)."""


@dataclass(frozen=True, slots=True)
class NotifyMessage:
    """Append a notification (a completion: call result, attach/output result) to a journal."""

    invocation_id: InvocationId
    frame_type: int
    payload: bytes
    key: str


@dataclass(frozen=True, slots=True)
class SignalMessage:
    """Deliver a signal: an awakeable completion, a named signal, or cancel (index 1)."""

    invocation_id: InvocationId
    index: int | None = None
    name: str | None = None
    result: Result | None = None


@dataclass(frozen=True, slots=True)
class AttachMessage:
    """Attach to (or read the output of) an invocation: its result (or not-found, or not-ready
    for get-output) comes back to ``caller``'s completion ``completion_id`` as a NotifyMessage,
    at once or when it completes."""

    invocation_id: InvocationId
    caller: InvocationId
    completion_id: int
    notification_type: int


@dataclass(frozen=True, slots=True)
class KillMessage:
    """Kill an invocation (and its request-response callees, cascading)."""

    invocation_id: InvocationId


Body = InvokeMessage | NotifyMessage | SignalMessage | AttachMessage | KillMessage


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One message from partition ``source`` (its ``seq``-th) to partition ``target``."""

    source: int
    seq: int
    target: int
    body: Body

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> OutboxMessage:
        try:
            return cls.from_json(json.loads(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not a message: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "seq": self.seq, "target": self.target,
                **_body_json(self.body)}  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> OutboxMessage:
        try:
            return cls(_int(data["source"]), _int(data["seq"]), _int(data["target"]),
                       _body(data))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"a malformed message: {type(exc).__name__}: {exc}") from None


def encode_messages(messages: Sequence[OutboxMessage]) -> bytes:
    """One delivery as bytes (a JSON array)."""
    return json.dumps([msg.to_json() for msg in messages], separators=(",", ":")).encode()


def decode_messages(data: bytes) -> list[OutboxMessage]:
    """The messages of one delivery; MessageError when it is not one."""
    try:
        items = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"a delivery must be a JSON array of messages: {exc}") from None
    if not isinstance(items, list):
        raise MessageError("a delivery must be a JSON array of messages")
    return [OutboxMessage.from_json(item) for item in items]


class Transport(Protocol):
    """Carries messages to the engine owning their target partition (over HTTP between
    processes, in memory in tests)."""

    async def deliver(self, target_partition: int, messages: list[OutboxMessage]) -> None:
        """Deliver ``messages`` (one source partition, seq order) to ``target_partition``'s owner
        and return once its ``Engine.accept`` returned (they are applied and durable there).
        Raise when the owner is unknown, unreachable or refuses (``NotOwned``): the engine keeps
        the messages and retries with back-off."""
        ...


# -- JSON forms --------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: Any) -> bytes:
    if not isinstance(text, str):
        raise TypeError("bytes must be base64 text")
    return base64.b64decode(text, validate=True)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r} is not an integer")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


def _opt(value: Any, conv: Any) -> Any:
    return None if value is None else conv(value)


def _result_json(result: Result | None) -> Any:
    if result is None:
        return None
    if result.ok:
        return {"value": _b64(result.value or b"")}
    return {"code": result.failure_code, "message": result.failure_message,
            "metadata": [list(pair) for pair in result.failure_metadata]}  # fmt: skip


def _result(data: Any) -> Result | None:
    if data is None:
        return None
    if "value" in data:
        return Result(value=_unb64(data["value"]))
    metadata = tuple((_str(k), _str(v)) for k, v in data.get("metadata", []))
    return Result.failure(_int(data["code"]), _str(data["message"]), metadata)


def _id(text: Any) -> InvocationId:
    return InvocationId.parse(_str(text))


def _body_json(body: Body) -> dict[str, Any]:
    match body:
        case InvokeMessage():
            return {
                "kind": "invoke", "id": str(body.invocation_id), "service": body.service,
                "handler": body.handler, "key": body.key, "body": _b64(body.body),
                "headers": [list(h) for h in body.headers],
                "idempotency_key": body.idempotency_key, "execution_time": body.execution_time,
                "send": body.send,
                "caller": None if body.caller is None else [str(body.caller[0]), body.caller[1]],
                "invoked_by": body.invoked_by, "sent_at": body.sent_at,
            }  # fmt: skip
        case NotifyMessage():
            return {"kind": "notify", "id": str(body.invocation_id), "type": body.frame_type,
                    "payload": _b64(body.payload), "key": body.key}  # fmt: skip
        case SignalMessage():
            return {"kind": "signal", "id": str(body.invocation_id), "index": body.index,
                    "name": body.name, "result": _result_json(body.result)}  # fmt: skip
        case AttachMessage():
            return {"kind": "attach", "id": str(body.invocation_id), "caller": str(body.caller),
                    "completion_id": body.completion_id,
                    "type": body.notification_type}  # fmt: skip
        case KillMessage():
            return {"kind": "kill", "id": str(body.invocation_id)}


def _body(data: Any) -> Body:
    kind = data["kind"]
    iid = _id(data["id"])
    if kind == "invoke":
        caller = data.get("caller")
        return InvokeMessage(
            iid, _str(data["service"]), _str(data["handler"]), _str(data.get("key", "")),
            _unb64(data.get("body", "")),
            tuple((_str(k), _str(v)) for k, v in data.get("headers", [])),
            _opt(data.get("idempotency_key"), _str), _opt(data.get("execution_time"), _int),
            bool(data.get("send", False)),
            None if caller is None else (_id(caller[0]), _int(caller[1])),
            _opt(data.get("invoked_by"), _str), _opt(data.get("sent_at"), _int),
        )  # fmt: skip
    if kind == "notify":
        return NotifyMessage(iid, _int(data["type"]), _unb64(data["payload"]), _str(data["key"]))
    if kind == "signal":
        return SignalMessage(iid, _opt(data.get("index"), _int), _opt(data.get("name"), _str),
                             _result(data.get("result")))  # fmt: skip
    if kind == "attach":
        return AttachMessage(iid, _id(data["caller"]), _int(data["completion_id"]),
                             _int(data["type"]))  # fmt: skip
    if kind == "kill":
        return KillMessage(iid)
    raise ValueError(f"unknown message kind {kind!r}")
