"""Request bodies from Python values and Python values from response bodies.

JSON is the default on both sides. ``bytes`` travel raw (``application/octet-stream``). A
dataclass, Pydantic model or msgspec struct is encoded as its JSON object, and an output type
rebuilds it (recursively through lists, dicts, tuples and optionals). Pydantic and msgspec are
used only when the value or type comes from them, so neither is a dependency.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any

JSON_CONTENT_TYPE = "application/json"
BYTES_CONTENT_TYPE = "application/octet-stream"


class _NoBody:
    """The type of NO_BODY."""

    _instance: _NoBody | None = None

    def __new__(cls) -> _NoBody:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()
"""The default argument of request()/send(): send no body and no content-type. (None sends null.)"""


# ---------------------------------------------------------------------------------------------
# encoding


def encode_input(value: Any) -> tuple[bytes | None, str | None]:
    """The body and content-type for a handler argument; (None, None) for NO_BODY."""
    if value is NO_BODY:
        return None, None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value), BYTES_CONTENT_TYPE
    msgspec = _msgspec_module(type(value))
    if msgspec is not None:
        return msgspec.json.encode(value), JSON_CONTENT_TYPE
    if _is_pydantic_model(type(value)):
        return value.model_dump_json().encode(), JSON_CONTENT_TYPE
    try:
        text = json.dumps(value, default=_to_jsonable, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        name = type(value).__name__
        raise TypeError(f"cannot encode {name} as a JSON request body: {exc}") from exc
    return text.encode(), JSON_CONTENT_TYPE


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if _is_pydantic_model(type(value)):
        return value.model_dump(mode="json")
    if _msgspec_module(type(value)) is not None:
        return json.loads(_msgspec_module(type(value)).json.encode(value))
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# ---------------------------------------------------------------------------------------------
# decoding


def decode_output(body: bytes, output_type: Any) -> Any:
    """The value of a successful answer's body as ``output_type`` (Any/None: decoded JSON).

    An empty body is None (a handler that returns nothing), except for ``bytes``.
    Raises ValueError when the body does not fit.
    """
    if output_type is bytes:
        return body
    if not body:
        return None
    msgspec = _msgspec_module(output_type)
    if msgspec is not None:
        return msgspec.json.decode(body, type=output_type)
    if _is_pydantic_model(output_type):
        return output_type.model_validate_json(body)
    value = json.loads(body)
    return convert(value, output_type)


def convert(value: Any, hint: Any) -> Any:
    """Build ``hint`` from decoded JSON; ValueError if it does not fit."""
    if hint is Any or hint is object:
        return value
    if hint is None or hint is type(None):
        if value is not None:
            raise ValueError(f"expected null, got {type(value).__name__}")
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return _convert_union(value, args)
    if origin is typing.Annotated:
        return convert(value, args[0])
    if origin in (list, set, frozenset, tuple) or hint in (list, set, frozenset, tuple):
        return _convert_sequence(value, origin or hint, args)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {type(value).__name__}")
        key_hint, value_hint = args if args else (Any, Any)
        return {convert(k, key_hint): convert(v, value_hint) for k, v in value.items()}
    if isinstance(hint, type):
        return _convert_class(value, hint)
    return value  # TypeVars, Literal and the like: trust the server


def _convert_union(value: Any, args: tuple[Any, ...]) -> Any:
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return convert(value, arg)
        except (ValueError, TypeError) as exc:
            errors.append(str(exc))
    raise ValueError(f"no member of the union fits: {'; '.join(errors)}")


def _convert_sequence(value: Any, container: Any, args: tuple[Any, ...]) -> Any:
    if not isinstance(value, list):
        raise ValueError(f"expected an array, got {type(value).__name__}")
    if container is tuple and args and args[-1] is not Ellipsis:
        if len(args) != len(value):
            raise ValueError(f"expected {len(args)} items, got {len(value)}")
        return tuple(convert(v, a) for v, a in zip(value, args, strict=True))
    item = args[0] if args else Any
    return container(convert(v, item) for v in value)


def _convert_class(value: Any, cls: type) -> Any:
    if _is_pydantic_model(cls):
        return cls.model_validate(value)  # type: ignore[attr-defined]
    msgspec = _msgspec_module(cls)
    if msgspec is not None:
        return msgspec.convert(value, type=cls)
    if dataclasses.is_dataclass(cls):
        if not isinstance(value, dict):
            raise ValueError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs = {
            f.name: convert(value[f.name], hints.get(f.name, Any))
            for f in dataclasses.fields(cls)
            if f.init and f.name in value
        }
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ValueError(f"cannot build {cls.__name__}: {exc}") from exc
    if cls is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, cls) and not (cls is int and isinstance(value, bool)):
        return value
    raise ValueError(f"expected {cls.__name__}, got {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# optional libraries


def _is_pydantic_model(cls: Any) -> bool:
    return isinstance(cls, type) and any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel"
        for base in cls.__mro__
    )


def _msgspec_module(cls: Any) -> Any:
    """The msgspec module if ``cls`` is a msgspec Struct, else None."""
    if not isinstance(cls, type):
        return None
    if not any(base.__module__.startswith("msgspec") for base in cls.__mro__[1:]):
        return None
    import msgspec  # noqa: PLC0415 -- only reached when the type already comes from msgspec

    return msgspec if issubclass(cls, msgspec.Struct) else None
