"""Property tests (hypothesis) over everything that parses input from outside: framing, message
decoding, the manifest, ids, content types, durations, request bodies and typed JSON. Whatever
the input, only perdure's documented errors come out (ProtocolError and its subclasses,
DurationError, JsonBodyError, ValueError for typed JSON, TerminalError 400 for a handler's
input); valid values round-trip."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
from typing import Any, Literal, TypedDict

import hypothesis.strategies as st
import msgspec
import pydantic
import pytest
from hypothesis import HealthCheck, example, given, settings

from perdure.protocol import (
    AwakeableId,
    DeploymentId,
    FrameDecoder,
    InvalidIdError,
    InvocationId,
    Manifest,
    ManifestError,
    MessageType,
    ProtocolError,
    decode_frames,
    negotiate_manifest_version,
    parse_invocation_content_type,
    parse_manifest_content_type,
)
from perdure.protocol.framing import encode_header
from perdure.protocol.messages import decode_payload
from perdure.sdk.errors import TerminalError
from perdure.sdk.serde import JsonSerde
from perdure.server.api.durations import DurationError, parse_duration
from perdure.server.api.json_body import JsonBodyError, parse_json_body
from perdure.typed_json import from_jsonable, to_jsonable

# PERDURE_FUZZ_EXAMPLES=5000 searches harder than CI's default.
FUZZ = settings(
    max_examples=int(os.environ.get("PERDURE_FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


# -- framing and messages --------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=200), st.lists(st.integers(1, 40), max_size=10))
def test_the_frame_decoder_raises_only_protocol_errors(data: bytes, cuts: list[int]) -> None:
    decoder = FrameDecoder(max_frame_size=1 << 16)
    chunks, rest = [], data
    for cut in cuts:
        chunks.append(rest[:cut])
        rest = rest[cut:]
    chunks.append(rest)
    try:
        for chunk in chunks:
            for frame in decoder.feed(chunk):
                frame.message()
        decoder.finish()
    except ProtocolError:
        pass


@FUZZ
@given(st.sampled_from(list(MessageType)), st.binary(max_size=120))
@example(MessageType.START, b"\x0a\x02\xff\xfe")  # a string field holding invalid UTF-8
def test_decoding_any_payload_raises_only_protocol_errors(
    kind: MessageType, payload: bytes
) -> None:
    with contextlib.suppress(ProtocolError):
        decode_payload(kind, payload)
    with contextlib.suppress(ProtocolError):
        decode_frames(encode_header(kind, 0, len(payload)) + payload)


# -- the manifest ----------------------------------------------------------------------------

_VALID = {
    "protocolMode": "BIDI_STREAM",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [
        {
            "name": "Svc",
            "ty": "VIRTUAL_OBJECT",
            "handlers": [
                {"name": "h", "ty": "SHARED", "input": {"required": False, "contentType": "a/b"},
                 "output": {"contentType": "application/json"}, "inactivityTimeout": 1000},
            ],
            "documentation": "d",
            "metadata": {"k": "v"},
        }
    ],
}  # fmt: skip


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


_MANIFEST_PATHS = _paths(_VALID)[1:]


@st.composite
def mutated_manifests(draw: st.DrawFn) -> Any:
    """The valid manifest with a few values swapped for arbitrary JSON (null included)."""
    manifest = json.loads(json.dumps(_VALID))
    for path in draw(st.lists(st.sampled_from(_MANIFEST_PATHS), min_size=1, max_size=3)):
        target = manifest
        try:
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    return manifest


@FUZZ
@given(mutated_manifests() | json_values)
@example({"minProtocolVersion": 5, "maxProtocolVersion": 6, "services": None})
@example({"minProtocolVersion": None, "maxProtocolVersion": 6, "services": []})
@example(
    {
        "minProtocolVersion": 5,
        "maxProtocolVersion": 6,
        "services": [
            {"name": "S", "ty": "SERVICE", "handlers": [], "retryPolicyExponentiationFactor": 1e999}
        ],
    }
)
def test_manifest_parsing_raises_only_manifest_errors(data: Any) -> None:
    try:
        manifest = Manifest.from_json(data)
    except ManifestError:
        return
    written = json.dumps(manifest.to_json(), allow_nan=False)  # never NaN or Infinity
    again = Manifest.from_json(json.loads(written))
    assert again == manifest


@FUZZ
@given(st.binary(max_size=200))
@example(b"[" * 100_000)
@example(b'{"minProtocolVersion": NaN}')
def test_manifest_bytes_raise_only_manifest_errors(data: bytes) -> None:
    with contextlib.suppress(ManifestError):
        Manifest.from_bytes(data)


def test_the_valid_manifest_parses() -> None:
    assert Manifest.from_json(_VALID).service("Svc") is not None


# -- ids -------------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=50) | st.text(alphabet="inv_1sgnprom0dp-aZ9=", max_size=45))
def test_id_parsers_raise_only_invalid_id_errors(text: str) -> None:
    for parse in (InvocationId.parse, AwakeableId.parse, DeploymentId.parse):
        try:
            parsed = parse(text)
        except InvalidIdError:
            continue
        assert type(parsed).parse(str(parsed)) == parsed


@FUZZ
@given(st.binary(max_size=30))
def test_raw_invocation_ids_raise_only_invalid_id_errors(raw: bytes) -> None:
    try:
        parsed = InvocationId.from_bytes(raw)
    except InvalidIdError:
        return
    assert parsed.to_bytes() == raw


@FUZZ
@given(st.integers(0, 2**64 - 1), st.integers(0, 2**128 - 1), st.integers(0, 2**32 - 1))
def test_awakeable_ids_round_trip(partition: int, uuid: int, index: int) -> None:
    awakeable = AwakeableId(InvocationId(partition, uuid), index)
    assert AwakeableId.parse(str(awakeable)) == awakeable


# -- content types ---------------------------------------------------------------------------


@FUZZ
@given(
    st.none()
    | st.text(max_size=40)
    | st.text(max_size=6).map(lambda t: "application/vnd.restate.invocation.v" + t)
)
@example("application/vnd.restate.invocation.v²")
@example("application/vnd.restate.invocation.v٣")
def test_content_type_parsers_never_raise(text: str | None) -> None:
    version = parse_invocation_content_type(text)
    assert version is None or (isinstance(version, int) and version > 0)
    assert parse_manifest_content_type(text) in (None, 1, 2, 3, 4)
    assert negotiate_manifest_version(text) in (None, 2, 3, 4)


# -- durations and request bodies ------------------------------------------------------------


@FUZZ
@given(st.text(max_size=30) | st.from_regex(r"\A(P|PT)?[0-9.]{1,400}[a-zA-Z ]{0,8}\Z"))
@example("²")
@example("9" * 400 + "d")
@example("9" * 5000)
def test_durations_raise_only_duration_errors(text: str) -> None:
    try:
        ms = parse_duration(text)
    except DurationError:
        return
    assert isinstance(ms, int) and ms >= 0


@FUZZ
@given(st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode()))
@example(b'"\\ud800"')
@example(b"NaN")
@example(b"[" * 100_000)
def test_request_bodies_raise_only_json_body_errors(body: bytes) -> None:
    try:
        value = parse_json_body(body)
    except JsonBodyError:
        return
    json.dumps(value, allow_nan=False).encode("utf-8")  # what was accepted can be written back


# -- typed JSON ------------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    ONE = 1


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


class Movie(TypedDict):
    title: str
    year: int


class Model(pydantic.BaseModel):
    name: str
    tags: list[str] = []


class Struct(msgspec.Struct):
    id: int
    note: str | None = None


TYPES: list[Any] = [
    int, float, str, bool, None, Any, Colour, Point, Movie, Model, Struct,
    list[int], set[int], frozenset[str], set[Any], tuple[int, str], tuple[float, ...],
    dict[str, int], dict[int, Point], dict[Colour, str], dict[float, Any],
    int | None, Point | Movie, Literal["a", 1, None], list[Point | None], dict[str, list[Model]],
]  # fmt: skip


@FUZZ
@given(json_values, st.sampled_from(TYPES))
@example([{}], set[Any])
@example({"x": [1]}, Point)
def test_typed_json_raises_only_value_errors(raw: Any, tp: Any) -> None:
    try:
        value = from_jsonable(raw, tp)
    except ValueError:
        return
    json.dumps(to_jsonable(value))


@FUZZ
@given(st.binary(max_size=60) | json_values.map(lambda v: json.dumps(v).encode()),
       st.sampled_from(TYPES))  # fmt: skip
@example(b"[" * 100_000 + b"]" * 100_000, list[int])
@example(b"NaN", float)
@example(b"1e999", Any)
def test_a_handler_input_that_does_not_fit_is_a_terminal_400(data: bytes, tp: Any) -> None:
    status = 0
    try:
        JsonSerde(tp).deserialize(data)
    except TerminalError as exc:
        status = exc.status_code
    assert status in (0, 400)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
def test_a_handler_result_of_nan_is_never_written_as_json(value: Any) -> None:
    with pytest.raises(TypeError, match="cannot serialize"):
        JsonSerde().serialize(value)
