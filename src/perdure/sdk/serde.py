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

T = TypeVar("T")

JSON_CONTENT_TYPE = "application/json"
BYTES_CONTENT_TYPE = "application/octet-stream"

try:  # optional integrations: used only when the user's types come from these libraries
    import pydantic as _pydantic
except ImportError:  # pragma: no cover - depends on the environment
    _pydantic = None  # type: ignore[assignment]
try:
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - depends on the environment
    _msgspec = None  # type: ignore[assignment]


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
            return json.dumps(to_jsonable(value), separators=(",", ":")).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"cannot serialize {type(value).__name__} as JSON: {exc}") from None

    def deserialize(self, data: bytes) -> Any:
        if not data:
            return None
        try:
            raw = json.loads(data)
        except ValueError as exc:
            raise TerminalError(f"payload is not valid JSON: {exc}", 400) from None
        try:
            return from_jsonable(raw, self.type_hint)
        except (TypeError, ValueError, KeyError) as exc:
            name = getattr(self.type_hint, "__name__", str(self.type_hint))
            raise TerminalError(f"payload does not match {name}: {exc}", 400) from None

    def json_schema(self) -> Any | None:
        return json_schema_of(self.type_hint)


def serde_for(type_hint: Any) -> Serde:
    """The default serde for a type hint: raw for ``bytes``, JSON for everything else."""
    if type_hint is bytes:
        return BytesSerde()
    return JsonSerde(type_hint)


# ---------------------------------------------------------------------------------------------
# Python values -> JSON values
# ---------------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if _pydantic is not None and isinstance(value, _pydantic.BaseModel):
        return value.model_dump(mode="json")
    if _msgspec is not None and isinstance(value, _msgspec.Struct):
        return _msgspec.to_builtins(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------------------------
# JSON values -> Python values of a type hint
# ---------------------------------------------------------------------------------------------


def _is_pydantic_model(tp: Any) -> bool:
    return _pydantic is not None and isinstance(tp, type) and issubclass(tp, _pydantic.BaseModel)


def _is_msgspec_struct(tp: Any) -> bool:
    return _msgspec is not None and isinstance(tp, type) and issubclass(tp, _msgspec.Struct)


def from_jsonable(raw: Any, tp: Any) -> Any:
    if tp is Any or tp is object:
        return raw
    if tp is None or tp is type(None):
        if raw is not None:
            raise ValueError(f"expected null, got {raw!r}")
        return None
    if _is_pydantic_model(tp):
        return tp.model_validate(raw)
    if _is_msgspec_struct(tp):
        return _msgspec.convert(raw, tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object for {tp.__name__}, got {raw!r}")
        hints = typing.get_type_hints(tp)
        kwargs = {
            f.name: from_jsonable(raw[f.name], hints.get(f.name, Any))
            for f in dataclasses.fields(tp)
            if f.init and f.name in raw
        }
        return tp(**kwargs)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(raw)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if raw is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return from_jsonable(raw, arg)
            except (TypeError, ValueError, KeyError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors) or f"{raw!r} matches no member of {tp}")
    if origin in (list, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        if not isinstance(raw, list):
            raise ValueError(f"expected an array, got {raw!r}")
        container = origin or tp
        if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            return tuple(from_jsonable(v, a) for v, a in zip(raw, args, strict=True))
        item = args[0] if args else Any
        return container(from_jsonable(v, item) for v in raw)
    if origin is dict or tp is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object, got {raw!r}")
        value_type = args[1] if len(args) == 2 else Any
        return {k: from_jsonable(v, value_type) for k, v in raw.items()}
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(f"{raw!r} is not one of {args}")
        return raw
    if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if tp in (str, int, float, bool):
        if not isinstance(raw, tp) or (tp is int and isinstance(raw, bool)):
            raise ValueError(f"expected {tp.__name__}, got {raw!r}")
        return raw
    return raw


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
        struct_schema: dict[str, Any] = _msgspec.json.schema(tp)
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
