"""Golden bytes that no one here wrote: a recording of the official Restate server (npm
@restatedev/restate-server 1.7.12) driving services of the official Python SDK (restate-sdk 1.2.0)
over HTTP/1.1. perdure must decode every recorded message and re-encode it byte for byte, and
every id in the recording must parse and format back to the same string.

Re-record with scripts/golden/record.py (see scripts/golden/README.md).
"""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from perdure.protocol import (
    AwakeableId,
    Frame,
    FrameDecoder,
    InvocationId,
    Manifest,
    MessageType,
    decode_frames,
    encode_message,
    parse_invocation_content_type,
    parse_manifest_content_type,
)
from perdure.protocol import messages as m

FIXTURE = Path(__file__).parent / "fixtures" / "golden_v6.json"
TERMINAL = {MessageType.END, MessageType.SUSPENSION, MessageType.ERROR}
ID = re.compile(r"inv_1[0-9a-zA-Z]{33}")
AWAKEABLE = re.compile(r"(?:sign|prom)_1[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Exchange:
    via: str
    method: str
    path: str
    request_headers: list[tuple[str, str]]
    request_body: bytes
    status: int
    response_headers: list[tuple[str, str]]
    response_body: bytes

    def header(self, name: str, *, response: bool = False) -> str | None:
        headers = self.response_headers if response else self.request_headers
        return next((v for k, v in headers if k == name), None)

    @property
    def is_invocation(self) -> bool:
        return self.via == "deployment" and "/invoke/" in self.path


def load(path: Path = FIXTURE) -> list[Exchange]:
    recording: dict[str, Any] = json.loads(path.read_text())
    return [
        Exchange(
            via=e["via"],
            method=e["method"],
            path=e["path"],
            request_headers=[(k, v) for k, v in e["request_headers"]],
            request_body=base64.b64decode(e["request_body"]),
            status=e["status"],
            response_headers=[(k, v) for k, v in e["response_headers"]],
            response_body=base64.b64decode(e["response_body"]),
        )
        for e in recording["exchanges"]
    ]


EXCHANGES = load()
ATTEMPTS = [e for e in EXCHANGES if e.is_invocation]


def _frames(body: bytes) -> list[Frame]:
    return decode_frames(body)


def check_round_trip(exchanges: list[Exchange]) -> Counter[MessageType]:
    """Decode and re-encode every recorded message; returns how often each type occurred."""
    seen: Counter[MessageType] = Counter()
    for exchange in exchanges:
        if not exchange.is_invocation:
            continue
        for body in (exchange.request_body, exchange.response_body):
            frames = _frames(body)
            reencoded = b"".join(encode_message(f.message(), flags=f.flags) for f in frames)
            assert reencoded == body, f"{exchange.path}: re-encoding differs"
            seen.update(f.type for f in frames)
    return seen


def test_the_recording_has_attempts_and_discovery() -> None:
    assert len(ATTEMPTS) >= 30
    assert any(e.via == "deployment" and e.path.endswith("/discover") for e in EXCHANGES)


def test_every_message_round_trips_byte_for_byte() -> None:
    check_round_trip(EXCHANGES)


def test_the_recording_covers_the_protocol() -> None:
    seen = check_round_trip(EXCHANGES)
    required = {
        MessageType.START, MessageType.INPUT, MessageType.OUTPUT, MessageType.END,
        MessageType.SUSPENSION, MessageType.ERROR, MessageType.PROPOSE_RUN_COMPLETION,
        MessageType.GET_EAGER_STATE, MessageType.SET_STATE, MessageType.CLEAR_STATE,
        MessageType.CLEAR_ALL_STATE, MessageType.GET_EAGER_STATE_KEYS,
        MessageType.GET_LAZY_STATE, MessageType.GET_LAZY_STATE_COMPLETION,
        MessageType.GET_LAZY_STATE_KEYS, MessageType.GET_LAZY_STATE_KEYS_COMPLETION,
        MessageType.CALL, MessageType.CALL_COMPLETION, MessageType.ONE_WAY_CALL,
        MessageType.CALL_INVOCATION_ID_COMPLETION, MessageType.SLEEP, MessageType.SLEEP_COMPLETION,
        MessageType.RUN, MessageType.RUN_COMPLETION, MessageType.SIGNAL,
        MessageType.SEND_SIGNAL, MessageType.COMPLETE_AWAKEABLE, MessageType.GET_PROMISE,
        MessageType.GET_PROMISE_COMPLETION, MessageType.PEEK_PROMISE,
        MessageType.PEEK_PROMISE_COMPLETION, MessageType.COMPLETE_PROMISE,
        MessageType.COMPLETE_PROMISE_COMPLETION, MessageType.ATTACH_INVOCATION,
        MessageType.ATTACH_INVOCATION_COMPLETION,
    }  # fmt: skip
    assert required <= set(seen), f"not recorded: {sorted(t.name for t in required - set(seen))}"


def test_chunked_decoding_matches_whole_decoding() -> None:
    for exchange in ATTEMPTS:
        decoder = FrameDecoder()
        frames: list[Frame] = []
        body = exchange.request_body + exchange.response_body
        for i in range(0, len(body), 7):
            frames += decoder.feed(body[i : i + 7])
        decoder.finish()
        assert frames == _frames(exchange.request_body) + _frames(exchange.response_body)


def test_attempts_follow_the_protocol_shape() -> None:
    for exchange in ATTEMPTS:
        version = parse_invocation_content_type(exchange.header("content-type"))
        assert version == 6
        assert exchange.header("content-type", response=True) == exchange.header("content-type")
        request = _frames(exchange.request_body)
        start = request[0].message()
        assert isinstance(start, m.StartMessage)
        # Request/response mode: the whole journal is replayed, and nothing else is sent.
        assert start.known_entries == len(request) - 1
        assert request[1].type is MessageType.INPUT
        response = _frames(exchange.response_body)
        assert response[-1].type in TERMINAL
        assert all(f.type not in TERMINAL for f in response[:-1])


def test_eager_state_was_recorded() -> None:
    starts = [_frames(e.request_body)[0].message() for e in ATTEMPTS]
    assert any(isinstance(s, m.StartMessage) and len(s.state_map) > 0 for s in starts)


def test_start_ids_agree_with_the_headers() -> None:
    for exchange in ATTEMPTS:
        start = _frames(exchange.request_body)[0].message()
        assert isinstance(start, m.StartMessage)
        inv = InvocationId.from_bytes(start.id)
        assert str(inv) == start.debug_id == exchange.header("x-restate-invocation-id")
        assert InvocationId.parse(start.debug_id) == inv


def _all_invocation_id_strings() -> set[str]:
    found: set[str] = set()
    for exchange in EXCHANGES:
        for body in (exchange.request_body, exchange.response_body):
            found.update(ID.findall(body.decode("latin-1")))
        for _, value in exchange.request_headers + exchange.response_headers:
            found.update(ID.findall(value))
        found.update(ID.findall(exchange.path))
    return found


def test_every_invocation_id_in_the_recording_round_trips() -> None:
    ids = _all_invocation_id_strings()
    assert len(ids) >= 30
    for text in ids:
        assert str(InvocationId.parse(text)) == text


def test_ingress_answers_carry_parseable_ids() -> None:
    ingress = [e for e in EXCHANGES if e.via == "ingress"]
    with_header = [e for e in ingress if e.header("x-restate-id", response=True)]
    assert with_header
    for exchange in with_header:
        text = exchange.header("x-restate-id", response=True)
        assert text is not None
        assert str(InvocationId.parse(text)) == text
    sends = [e for e in ingress if e.path.endswith("/send") and e.status == 202]
    assert sends
    for exchange in sends:
        answer = json.loads(exchange.response_body)
        assert answer["status"] in {"Accepted", "PreviouslyAccepted"}
        assert str(InvocationId.parse(answer["invocationId"])) == answer["invocationId"]


def test_awakeable_ids_round_trip_and_name_a_recorded_signal() -> None:
    signals: dict[str, set[int]] = {}
    awakeables: set[str] = set()
    for exchange in ATTEMPTS:
        request = _frames(exchange.request_body)
        start = request[0].message()
        assert isinstance(start, m.StartMessage)
        for frame in request[1:]:
            message = frame.message()
            if isinstance(message, m.SignalNotification) and message.HasField("signal_id"):
                signals.setdefault(start.debug_id, set()).add(message.signal_id)
        for frame in request + _frames(exchange.response_body):
            message = frame.message()
            if isinstance(message, m.CompleteAwakeableCommand):
                awakeables.add(message.awakeable_id)
    for exchange in EXCHANGES:
        if exchange.via == "ingress":
            awakeables.update(AWAKEABLE.findall(exchange.path))
    assert awakeables
    for text in awakeables:
        awakeable = AwakeableId.parse(text)
        assert str(awakeable) == text
        assert awakeable.signal_index >= 17
        assert awakeable.signal_index in signals.get(str(awakeable.invocation_id), set()), text


def test_workflow_run_ids_are_derived_from_name_and_key() -> None:
    # Restate derives a workflow run's uuid from its name and key; perdure's derivation is the same
    # (the partition key half is perdure's own hash).
    checked = 0
    for exchange in ATTEMPTS:
        start = _frames(exchange.request_body)[0].message()
        assert isinstance(start, m.StartMessage)
        service, handler = exchange.path.rsplit("/", 2)[-2:]
        if handler != "run" or not start.key:
            continue
        expected = InvocationId.for_workflow(service, start.key)
        assert InvocationId.from_bytes(start.id).uuid == expected.uuid
        checked += 1
    assert checked


def test_the_discovered_manifest_parses_and_rebuilds_identically() -> None:
    (discovery,) = [e for e in EXCHANGES if e.via == "deployment" and e.path.endswith("/discover")]
    version = parse_manifest_content_type(discovery.header("content-type", response=True))
    assert version is not None
    original = json.loads(discovery.response_body)
    manifest = Manifest.from_json(original)
    assert manifest.to_json(version) == original
    assert manifest.min_protocol_version <= 6 <= manifest.max_protocol_version


@pytest.mark.parametrize("exchange", ATTEMPTS[:3], ids=lambda e: e.path)
def test_frames_keep_their_raw_bytes(exchange: Exchange) -> None:
    frames = _frames(exchange.request_body)
    assert b"".join(f.to_bytes() for f in frames) == exchange.request_body
