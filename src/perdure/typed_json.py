"""Python values <-> JSON values, driven by type hints. Shared by the SDK's serde and the client,
so a value a handler returns decodes the same way in a caller, a client and a test.

Supported: str/int/float/bool/None, enums, Literal, Optional/Union, Annotated, list/set/frozenset/
tuple (fixed and variadic), dict (keys of str, int, float or enum types round-trip through JSON's
string keys), TypedDict, dataclasses, and Pydantic models and msgspec structs when the value or type
comes from those libraries (neither is a dependency). ``Any``/``object``/TypeVars: the plain JSON.
A value that does not fit raises ValueError saying what was expected.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from typing import Any, Union

try:  # optional integrations: used only when the user's types come from these libraries
    import pydantic as _pydantic
except ImportError:  # pragma: no cover - depends on the environment
    _pydantic = None  # type: ignore[assignment]
try:
    import msgspec as _msgspec
except ImportError:  # pragma: no cover - depends on the environment
    _msgspec = None  # type: ignore[assignment]


def is_pydantic_model(tp: Any) -> bool:
    return _pydantic is not None and isinstance(tp, type) and issubclass(tp, _pydantic.BaseModel)


def is_msgspec_struct(tp: Any) -> bool:
    return _msgspec is not None and isinstance(tp, type) and issubclass(tp, _msgspec.Struct)


# -- Python -> JSON ------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A JSON-compatible value (dicts, lists, str, numbers, bools, None) for ``value``."""
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, int | float):
        return value
    if _pydantic is not None and isinstance(value, _pydantic.BaseModel):
        return value.model_dump(mode="json")
    if _msgspec is not None and isinstance(value, _msgspec.Struct):
        return _msgspec.to_builtins(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {_key_to_json(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _key_to_json(key: Any) -> str:
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, str):
        return key
    if isinstance(key, int | float) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"a dict key must be a str, int, float or enum, not {type(key).__name__}")


# -- JSON -> Python ------------------------------------------------------------------------------


_PLAIN = frozenset({str, int, float, bool})


def from_jsonable(raw: Any, tp: Any) -> Any:
    """Build a value of type ``tp`` from decoded JSON; ValueError if it does not fit."""
    if type(raw) is tp and tp in _PLAIN:
        return raw  # the common case, first: a str, int, float or bool as itself
    if tp is Any or tp is object or isinstance(tp, typing.TypeVar):
        return raw
    if tp is None or tp is type(None):
        if raw is not None:
            raise ValueError(f"expected null, got {_show(raw)}")
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return from_jsonable(raw, args[0])
    if origin in (Union, types.UnionType):
        return _union(raw, args)
    if origin is typing.Literal:
        if raw not in args:
            raise ValueError(f"{_show(raw)} is not one of {list(args)}")
        return raw
    if origin in (list, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
        return _sequence(raw, origin or tp, args)
    if origin is dict or tp is dict:
        if not isinstance(raw, dict):
            raise ValueError(f"expected an object, got {_show(raw)}")
        key_type, value_type = args if len(args) == 2 else (Any, Any)
        return {_key_from_json(k, key_type): from_jsonable(v, value_type) for k, v in raw.items()}
    if isinstance(tp, type):
        return _class(raw, tp)
    return raw  # NewType, ParamSpec and other typing forms: the plain JSON


def _union(raw: Any, args: tuple[Any, ...]) -> Any:
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
    raise ValueError(f"no member of the union fits: {'; '.join(errors)}")


def _sequence(raw: Any, container: Any, args: tuple[Any, ...]) -> Any:
    if not isinstance(raw, list):
        raise ValueError(f"expected an array, got {_show(raw)}")
    if container is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
        if len(args) != len(raw):
            raise ValueError(f"expected {len(args)} items, got {len(raw)}")
        return tuple(from_jsonable(v, a) for v, a in zip(raw, args, strict=True))
    item = args[0] if args else Any
    items = [from_jsonable(v, item) for v in raw]
    if container in (set, frozenset):
        try:
            return container(items)
        except TypeError:  # [{}] as set[Any]: an object or array cannot be a set's member
            raise ValueError(f"the items of {_show(raw)} cannot be members of a set") from None
    return container(items)


def _key_from_json(key: str, tp: Any) -> Any:
    if tp in (int, float):
        try:
            return tp(key)
        except ValueError:
            raise ValueError(f"the key {key!r} is not {_a(tp.__name__)}") from None
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        for member in tp:
            if str(member.value) == key:
                return member
        raise ValueError(f"the key {key!r} is not {_a(tp.__name__)}")
    return from_jsonable(key, tp)


def _class(raw: Any, tp: type) -> Any:
    if is_pydantic_model(tp):
        return tp.model_validate(raw)  # type: ignore[attr-defined]
    if is_msgspec_struct(tp):
        return _msgspec.convert(raw, tp)
    if dataclasses.is_dataclass(tp):
        kwargs = _fields(raw, tp, [f.name for f in dataclasses.fields(tp) if f.init])
        try:
            return tp(**kwargs)
        except TypeError as exc:
            raise ValueError(f"cannot build {tp.__name__}: {exc}") from None
    if typing.is_typeddict(tp):
        return _fields(raw, tp, list(typing.get_type_hints(tp)))
    if issubclass(tp, enum.Enum):
        try:
            return tp(raw)
        except ValueError:
            raise ValueError(f"{_show(raw)} is not {_a(tp.__name__)}") from None
    if tp is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, tp) and not (tp is int and isinstance(raw, bool)):
        return raw
    raise ValueError(f"expected {tp.__name__}, got {_show(raw)}")


def _fields(raw: Any, tp: type, names: list[str]) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"expected an object for {tp.__name__}, got {_show(raw)}")
    hints = typing.get_type_hints(tp, include_extras=True)
    return {name: from_jsonable(raw[name], hints.get(name, Any)) for name in names if name in raw}


def _show(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:57] + "..."


def _a(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"
