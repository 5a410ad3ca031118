"""Strict parsing of the JSON request bodies the server reads itself (admin API, attach/lookup).

Python's ``json`` accepts what JSON does not (``NaN``, ``Infinity``, lone UTF-16 surrogates
such as ``"\\ud800"``) and raises RecursionError on deep nesting. Each of those would surface
later as a 500 (a surrogate cannot be encoded into the store, a NaN is echoed back as invalid
JSON), so they are refused here, with a message saying what to fix.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from perdure.server.limits import MAX_JSON_DEPTH


class JsonBodyError(ValueError):
    """The body is not JSON perdure accepts; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JsonBodyError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JsonBodyError(f"the number {text[:40]} is too large")
    return value


def parse_json_body(body: bytes) -> Any:
    """The decoded value of ``body``; JsonBodyError if it is not strict, reasonably shallow JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonBodyError(f"the body is not valid UTF-8: {exc}") from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(text) > MAX_JSON_DEPTH:
        raise JsonBodyError(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite)
    except JsonBodyError:
        raise
    except (ValueError, RecursionError) as exc:
        raise JsonBodyError(f"invalid JSON: {exc}") from None
    _check_strings(value)
    return value


def _depth(text: str) -> int:
    """An upper bound of the nesting depth (brackets inside strings count too): cheap and safe."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


_BRACKETS = re.compile(r"[\[\]{}]")


def _check_strings(value: Any) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            check_text(item, "a string of the body")
        elif isinstance(item, dict):
            for key, inner in item.items():
                check_text(key, "a key of the body")
                pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


def check_text(text: str, what: str) -> None:
    """JsonBodyError if ``text`` holds a lone surrogate (it has no UTF-8 form)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise JsonBodyError(
            f"{what} holds a lone UTF-16 surrogate ({text!r}), which is not valid Unicode"
        ) from None
