"""Serde: how handler arguments, results, state values, run results and promise values become
bytes and back.

JSON is the default. The type hint of a parameter or result picks the decoding: dataclasses,
Pydantic models and msgspec structs (when those libraries are installed), containers of them,
and plain JSON values. ``bytes`` is a raw payload (``application/octet-stream``). ``None`` is
the empty payload, so a handler without an argument and one called without input agree. A
handler may bring its own serde (any object with ``serialize``/``deserialize``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from typing import Any, Protocol, TypeVar, Union, runtime_checkable

from perdure.sdk.errors import TerminalError
from perdure.typed_json import from_jsonable, to_jsonable
from perdure.typed_json import is_msgspec_struct as _is_msgspec_struct
from perdure.typed_json import is_pydantic_model as _is_pydantic_model

T = TypeVar("T")

JSON_CONTENT_TYPE = "application/json"
BYTES_CONTENT_TYPE = "application/octet-stream"


@runtime_checkable
class Serde(Protocol):
    """Turns values into payload bytes and back; ``content_type`` goes into the manifest."""

    content_type: str

    def serialize(self, value: Any) -> bytes: ...

    def deserialize(self, data: bytes) -> Any: ...

    def json_schema(self) -> Any | None: ...


class BytesSerde:
    """Raw payloads: the handler receives and returns ``bytes`` untouched."""

    content_type = BYTES_CONTENT_TYPE

    def serialize(self, value: Any) -> bytes:
        if value is None:
            return b""
        if not isinstance(value, bytes | bytearray | memoryview):
            raise TypeError(f"a bytes payload must be bytes, got {type(value).__name__}")
        return bytes(value)

    def deserialize(self, data: bytes) -> Any:
        return data

    def json_schema(self) -> Any | None:
        return None


class JsonSerde:
    """JSON, decoded into ``type_hint`` (Any: the plain decoded JSON value)."""

    content_type = JSON_CONTENT_TYPE

    def __init__(self, type_hint: Any = Any) -> None:
        self.type_hint = type_hint

    def serialize(self, value: Any) -> bytes:
        if value is None:
            return b""
        try:
            return _ENCODER.encode(to_jsonable(value)).encode()
        except (TypeError, ValueError, RecursionError) as exc:
            raise TypeError(f"cannot serialize {type(value).__name__} as JSON: {exc}") from None

    def deserialize(self, data: bytes) -> Any:
        if not data:
            return None
        # Bad input is the caller's mistake and fails the same way on every retry: terminal
        # (400), including nesting too deep to parse and the non-JSON NaN and Infinity.
        try:
            text = (
                data
                if isinstance(data, str)
                else data.decode(json.detect_encoding(data), "surrogatepass")
            )
            raw = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            raise TerminalError(f"payload is not valid JSON: {exc}", 400) from None
        try:
            return from_jsonable(raw, self.type_hint)
        except (TypeError, ValueError, KeyError, RecursionError) as exc:
            name = getattr(self.type_hint, "__name__", str(self.type_hint))
            raise TerminalError(f"payload does not match {name}: {exc}", 400) from None

    def json_schema(self) -> Any | None:
        return json_schema_of(self.type_hint)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


# Built once: json.dumps/json.loads with options build a new encoder/decoder on every call.
# allow_nan=False: NaN and Infinity have no JSON form; writing them would hand every reader an
# unparsable payload.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite_float)


def serde_for(type_hint: Any) -> Serde:
    """The default serde for a type hint: raw for ``bytes``, JSON for everything else."""
    if type_hint is bytes:
        return BytesSerde()
    return JsonSerde(type_hint)


# ---------------------------------------------------------------------------------------------
# JSON schemas for the discovery manifest
# ---------------------------------------------------------------------------------------------

_PRIMITIVE_SCHEMAS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def json_schema_of(tp: Any) -> Any | None:
    """A JSON schema for a type hint, or None when nothing useful can be said (Any)."""
    if tp is Any or tp is object:
        return None
    schema = _schema(tp)
    return schema or None


def _schema(tp: Any) -> dict[str, Any]:
    if tp in _PRIMITIVE_SCHEMAS:
        return dict(_PRIMITIVE_SCHEMAS[tp])
    if _is_pydantic_model(tp):
        schema: dict[str, Any] = tp.model_json_schema()
        return schema
    if _is_msgspec_struct(tp):
        import msgspec  # noqa: PLC0415 -- only reached for msgspec types

        struct_schema: dict[str, Any] = msgspec.json.schema(tp)
        return struct_schema
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        props = {f.name: _schema(hints.get(f.name, Any)) for f in dataclasses.fields(tp)}
        required = [
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        return {"type": "object", "title": tp.__name__, "properties": props, "required": required}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _schema(args[0])
    if origin in (Union, types.UnionType):
        return {"anyOf": [_schema(a) for a in args]}
    if origin in (list, set, frozenset) or tp in (list, set, frozenset):
        return {"type": "array", "items": _schema(args[0]) if args else {}}
    if origin is tuple or tp is tuple:
        if args and not (len(args) == 2 and args[1] is Ellipsis):
            return {"type": "array", "prefixItems": [_schema(a) for a in args]}
        return {"type": "array", "items": _schema(args[0]) if args else {}}
    if origin is dict or tp is dict:
        value = _schema(args[1]) if len(args) == 2 else {}
        return {"type": "object", "additionalProperties": value}
    if origin is typing.Literal:
        return {"enum": list(args)}
    return {}


__all__ = [
    "BYTES_CONTENT_TYPE",
    "JSON_CONTENT_TYPE",
    "BytesSerde",
    "JsonSerde",
    "Serde",
    "from_jsonable",
    "json_schema_of",
    "serde_for",
    "to_jsonable",
]
