"""Type-driven JSON conversion, shared by the SDK's serde and the client: both sides turn the same
bytes into the same Python values, and values round-trip through JSON."""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pydantic
import pytest

from perdure.client._serde import decode_output, encode_input
from perdure.sdk.errors import TerminalError
from perdure.sdk.serde import JsonSerde
from perdure.typed_json import from_jsonable, to_jsonable


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Item:
    sku: str
    qty: int = 1
    tags: list[str] = field(default_factory=list)


class Point(TypedDict):
    x: int
    y: float


class Model(pydantic.BaseModel):
    name: str
    color: Color


class Struct(msgspec.Struct):
    name: str
    level: Level


CASES: list[tuple[Any, Any]] = [
    (Color.BLUE, Color),
    (Level.HIGH, Level),
    ("b", Literal["a", "b"]),
    (3, Annotated[int, "meta"]),
    ({1: "one", 2: "two"}, dict[int, str]),
    ({Color.RED: 1}, dict[Color, int]),
    ({Level.LOW: 1.5}, dict[Level, float]),
    ({"x": 1, "y": 2.5}, Point),
    ((1, "a", None), tuple[int, str, None]),
    ((1, 2, 3), tuple[int, ...]),
    ({1, 2}, set[int]),
    (Item("tea", 2, ["hot"]), Item),
    ([Item("a"), None], list[Item | None]),
    (Model(name="m", color=Color.RED), Model),
    (Struct(name="s", level=Level.HIGH), Struct),
    (2.0, float),
    (None, int | None),
]


@pytest.mark.parametrize(("value", "hint"), CASES, ids=lambda v: repr(v)[:30])
def test_values_round_trip_and_both_sides_agree(value: Any, hint: Any) -> None:
    wire = json.dumps(to_jsonable(value)).encode()
    assert from_jsonable(json.loads(wire), hint) == value
    assert JsonSerde(hint).deserialize(JsonSerde(hint).serialize(value)) == value
    body, _ = encode_input(value)
    assert body is not None
    assert decode_output(body, hint) == value
    if value is not None:
        assert JsonSerde(hint).deserialize(body) == decode_output(body, hint)


@pytest.mark.parametrize(
    ("raw", "hint", "message"),
    [
        ("green", Color, "'green' is not a Color"),
        ("c", Literal["a", "b"], "'c' is not one of ['a', 'b']"),
        ({"7": 1}, dict[int, str], "expected str, got 1"),
        ({"nope": "x"}, dict[int, str], "the key 'nope' is not an int"),
        ({"qty": 1}, Item, "cannot build Item"),
        ([1, 2], tuple[int, int, int], "expected 3 items, got 2"),
        (True, int, "expected int, got True"),
        ("1", int | None, "no member of the union fits"),
        ([1], Point, "expected an object for Point"),
    ],
)
def test_misfits_say_what_was_expected(raw: Any, hint: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        from_jsonable(raw, hint)
    body = json.dumps(raw).encode()
    with pytest.raises(TerminalError) as caught:
        JsonSerde(hint).deserialize(body)
    assert caught.value.status_code == 400
    with pytest.raises(ValueError, match=re.escape(message)):
        decode_output(body, hint)


def test_unencodable_values_are_type_errors() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        to_jsonable(object())
    with pytest.raises(TypeError, match="a dict key must be"):
        to_jsonable({(1, 2): "tuple key"})
    with pytest.raises(TypeError, match="cannot encode float"):
        encode_input(float("nan"))
