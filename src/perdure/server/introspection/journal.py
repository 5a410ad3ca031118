"""How a stored journal frame shows in ``sys_journal``: its entry type name, its name, and the
"lite" JSON summary, in the shapes the official server reports for service protocol V6."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.json_format import MessageToDict

from perdure.protocol import messages as m
from perdure.protocol.messages import MessageType, decode_payload

T = MessageType


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _kind(type_id: int) -> MessageType | None:
    try:
        return MessageType(type_id)
    except ValueError:
        return None


def entry_type(type_id: int) -> str:
    """``Command: SetState``, ``Notification: Run``, ``Notification: Signal``."""
    kind = _kind(type_id)
    if kind is None:
        return f"Unknown: 0x{type_id:04X}"
    if kind is T.SIGNAL:
        return "Notification: Signal"
    if kind.is_command:
        return f"Command: {_camel(kind.name)}"
    return f"Notification: {_camel(kind.name.removesuffix('_COMPLETION'))}"


def _decode(type_id: int, payload: bytes) -> m.Message | None:
    try:
        return decode_payload(type_id, payload)
    except Exception:  # an unreadable frame shows without details rather than failing a query
        return None


def entry_name(type_id: int, payload: bytes) -> str | None:
    """A command's ``name`` (commands only, as the official server: notifications have none)."""
    kind = _kind(type_id)
    if kind is None or not kind.is_command:
        return None
    message = _decode(type_id, payload)
    return str(getattr(message, "name", "")) if message is not None else ""


_RESULTS = (
    ("value", "Success"),
    ("void", "Void"),
    ("failure", "Failure"),
    ("invocation_id", "InvocationId"),
    ("state_keys", "StateKeys"),
)


def _result(message: Any) -> str | None:
    for field, label in _RESULTS:
        if field in message.DESCRIPTOR.fields_by_name and message.HasField(field):
            return label
    return None


def _target(message: m.CallCommand | m.OneWayCallCommand) -> dict[str, Any]:
    if message.key:
        return {"name": message.service_name, "key": message.key, "handler": message.handler_name}
    return {"name": message.service_name, "handler": message.handler_name}


def entry_lite_json(type_id: int, payload: bytes) -> str | None:
    """A small JSON summary: what a command asks for, or which completion a notification is."""
    kind = _kind(type_id)
    message = _decode(type_id, payload) if kind is not None else None
    if kind is None or message is None:
        return None
    if kind.is_command:
        detail: dict[str, Any] = {}
        match message:
            case (
                m.SetStateCommand()
                | m.ClearStateCommand()
                | m.GetLazyStateCommand()
                | (m.GetEagerStateCommand())
            ):
                detail["key"] = bytes(message.key).decode("utf-8", "replace")
            case m.SleepCommand():
                detail["wake_up_time"] = message.wake_up_time
            case m.CallCommand() | m.OneWayCallCommand():
                detail["invocation_target"] = _target(message)
                if isinstance(message, m.OneWayCallCommand) and message.invoke_time:
                    detail["invoke_time"] = message.invoke_time
            case m.RunCommand():
                detail["name"] = message.name
            case m.GetPromiseCommand() | m.PeekPromiseCommand() | m.CompletePromiseCommand():
                detail["key"] = message.key
            case m.SendSignalCommand():
                detail["target_invocation_id"] = message.target_invocation_id
            case m.CompleteAwakeableCommand():
                detail["id"] = message.awakeable_id
            case m.OutputCommand():
                detail["result"] = "Failure" if message.HasField("failure") else "Success"
        return json.dumps({"Command": {_camel(kind.name): detail}}, separators=(",", ":"))
    if kind is T.SIGNAL:
        assert isinstance(message, m.SignalNotification)
        which = message.WhichOneof("id")
        ident = (
            {"Index": message.signal_id} if which == "signal_id" else {"Name": message.signal_name}
        )
        body: dict[str, Any] = {"ty": "Signal", "id": ident, "result": _result(message)}
    else:
        completion = _camel(kind.name.removesuffix("_COMPLETION"))
        body = {
            "ty": {"Completion": completion},
            "id": {"CompletionId": getattr(message, "completion_id", 0)},
            "result": _result(message),
        }
    return json.dumps({"Notification": body}, separators=(",", ":"))


def entry_json(type_id: int, payload: bytes) -> str | None:
    """The whole entry as JSON (the protobuf message's JSON form, keyed by the entry type)."""
    kind = _kind(type_id)
    message = _decode(type_id, payload) if kind is not None else None
    if kind is None or message is None:
        return None
    body = MessageToDict(message, preserving_proto_field_name=True)
    outer = "Command" if kind.is_command else "Notification"
    return json.dumps({outer: {_camel(kind.name): body}}, separators=(",", ":"))
