"""Readable views of what the engine stored, for assertions: journal entries and invocations.

Payloads are decoded the way a test wants to compare them: state keys become text, bytes that
hold JSON become the JSON value, other bytes stay bytes; a protocol ``Value`` becomes its
decoded content; enums become their names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from perdure.protocol import Frame
from perdure.protocol import messages as m
from perdure.server.records import Invocation, Result
from perdure.testing.clock import datetime_of_ms

EntryKind = Literal["command", "notification", "control"]


def decode_bytes(data: bytes) -> Any:
    """The JSON value ``data`` holds, or ``data`` itself when it is not JSON."""
    if not data:
        return data
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return data


_TEXT_BYTES = {"key", "keys"}
"""Bytes fields that hold names (state keys): shown as text."""


def _text(data: bytes) -> str | bytes:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data


def _field_value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_fields(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _text(value) if field.name in _TEXT_BYTES else decode_bytes(value)
    if field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        return field.enum_type.values_by_number[value].name
    return value


def message_fields(message: Message) -> Any:
    """The fields that are set, by name, decoded (see the module docstring)."""
    if isinstance(message, m.Value):
        return decode_bytes(message.content)
    fields: dict[str, Any] = {}
    for field, value in message.ListFields():
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                fields[field.name] = {k: _map_value(v) for k, v in value.items()}
            else:
                fields[field.name] = [_field_value(field, v) for v in value]
        else:
            fields[field.name] = _field_value(field, value)
    return fields


def _map_value(value: Any) -> Any:
    return message_fields(value) if isinstance(value, Message) else value


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal entry of an invocation."""

    index: int
    """Position in the journal (0 is the Input command)."""
    type: str
    """The protocol message type, e.g. ``"RUN"``, ``"SLEEP"``, ``"RUN_COMPLETION"``."""
    kind: EntryKind
    name: str
    """The entry's name (``ctx.run`` step name, sleep name...), "" when it has none."""
    fields: dict[str, Any]
    """Every field that is set, decoded (``name`` included)."""

    @classmethod
    def of(cls, index: int, frame: Frame) -> JournalEntry:
        message = frame.message()
        kind: EntryKind = (
            "command"
            if frame.type.is_command
            else "notification"
            if frame.type.is_notification
            else "control"
        )
        fields = message_fields(message)
        name = fields.get("name", "")
        return cls(index, frame.type.name, kind, name if isinstance(name, str) else "", fields)


@dataclass(frozen=True, slots=True)
class InvocationInfo:
    """An invocation as the engine keeps it."""

    id: str
    target: str
    """``Service/handler`` or ``Service/key/handler``."""
    status: str
    """scheduled, inboxed, invoked, suspended, backing-off, paused or completed."""
    created_at: datetime
    """On the harness's clock."""
    retry_count: int
    """Failed attempts counted against the retry policy."""
    last_failure: str | None
    """``[code] message`` of the last failed attempt (journal mismatches show up here)."""
    completed: bool
    value: Any
    """The decoded result (see ``decode_bytes``) once completed successfully, else None."""
    failure_code: int | None
    failure_message: str

    @property
    def succeeded(self) -> bool:
        return self.completed and self.failure_code is None

    @classmethod
    def of(cls, inv: Invocation) -> InvocationInfo:
        result = inv.result if inv.result is not None else Result()
        completed = inv.status.value == "completed"
        value = decode_bytes(result.value or b"") if completed and result.ok else None
        return cls(
            id=str(inv.id),
            target=inv.target,
            status=inv.status.value,
            created_at=datetime_of_ms(inv.created_at),
            retry_count=inv.retry_count,
            last_failure=inv.last_failure,
            completed=completed,
            value=None if value == b"" else value,
            failure_code=result.failure_code if completed else None,
            failure_message=result.failure_message if completed else "",
        )
