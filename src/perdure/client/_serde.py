"""Request bodies from Python values and Python values from response bodies.

JSON is the default on both sides. ``bytes`` travel raw (``application/octet-stream``). The
conversion between Python values and JSON follows the type hints exactly as in the SDK
(``perdure.typed_json``), so a client decodes a handler's output into the handler's types.
"""

from __future__ import annotations

import json
from typing import Any

from perdure.typed_json import from_jsonable, is_msgspec_struct, is_pydantic_model, to_jsonable

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
    if is_msgspec_struct(type(value)):
        import msgspec  # noqa: PLC0415 -- only reached for msgspec values

        return msgspec.json.encode(value), JSON_CONTENT_TYPE
    if is_pydantic_model(type(value)):
        return value.model_dump_json().encode(), JSON_CONTENT_TYPE
    try:
        text = json.dumps(to_jsonable(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        name = type(value).__name__
        raise TypeError(f"cannot encode {name} as a JSON request body: {exc}") from exc
    return text.encode(), JSON_CONTENT_TYPE


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
    if is_msgspec_struct(output_type):
        import msgspec  # noqa: PLC0415 -- only reached for msgspec types

        return msgspec.json.decode(body, type=output_type)
    if is_pydantic_model(output_type):
        return output_type.model_validate_json(body)
    return from_jsonable(json.loads(body), output_type)
