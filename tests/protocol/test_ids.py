"""Identifiers in Restate's formats: inv_1…, sign_1…/prom_1…, dp_1…."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perdure.protocol import AwakeableId, DeploymentId, InvalidIdError, InvocationId

# Examples from Restate's documentation of the ingress API.
DOC_INVOCATION_ID = "inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz"
DOC_DEPLOYMENT_ID = "dp_11nGQpCRmau6ypL82KH2TnP"
EARLY = datetime(2023, 1, 1, tzinfo=UTC)
LATE = datetime(2027, 1, 1, tzinfo=UTC)


def _ulid_time(value: int) -> datetime:
    return datetime.fromtimestamp((value >> 80) / 1000, UTC)


def test_documented_invocation_id_round_trips_and_holds_a_ulid() -> None:
    inv = InvocationId.parse(DOC_INVOCATION_ID)
    assert str(inv) == DOC_INVOCATION_ID
    # The uuid of a random invocation is a ULID: its top 48 bits are a plausible timestamp, which
    # only holds if the byte order of the encoding is right.
    assert EARLY < _ulid_time(inv.uuid) < LATE
    assert InvocationId.from_bytes(inv.to_bytes()) == inv


def test_documented_deployment_id_round_trips() -> None:
    dp = DeploymentId.parse(DOC_DEPLOYMENT_ID)
    assert str(dp) == DOC_DEPLOYMENT_ID
    assert EARLY < _ulid_time(dp.ulid) < LATE


def test_new_ids_are_38_characters_and_parse_back() -> None:
    ids = {InvocationId.new() for _ in range(100)}
    assert len(ids) == 100
    for inv in ids:
        text = str(inv)
        assert len(text) == 38 and text.startswith("inv_1")
        assert InvocationId.parse(text) == inv
        assert abs(_ulid_time(inv.uuid) - datetime.now(UTC)).total_seconds() < 60


@given(st.integers(0, 2**64 - 1), st.integers(0, 2**128 - 1))
def test_every_id_round_trips(pk: int, uuid: int) -> None:
    inv = InvocationId(pk, uuid)
    assert InvocationId.parse(str(inv)) == inv
    assert InvocationId.from_bytes(inv.to_bytes()) == inv
    assert inv.to_bytes()[:8] == pk.to_bytes(8, "big")


def test_extremes_encode_to_fixed_width() -> None:
    assert str(InvocationId(0, 0)) == "inv_1" + "0" * 33
    top = InvocationId(2**64 - 1, 2**128 - 1)
    assert len(str(top)) == 38 and InvocationId.parse(str(top)) == top


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must start with 'inv_1'"),
        ("inv_2gdJBtdVEcM942bjcDmb1c1khoaJe11Hbz", "must start with 'inv_1'"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hb", "must be 38 characters long, not 37"),
        ("inv_1gdJBtdVEcM942bjcDmb1c1khoaJe11Hb!", "'!' is not a base62 character"),
        ("inv_1" + "Z" * 33, "does not fit in 64 bits"),
        ("inv_1" + "0" * 11 + "Z" * 22, "does not fit in 128 bits"),
    ],
)
def test_bad_invocation_ids_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=reason.replace("(", r"\(")):
        InvocationId.parse(text)


def test_raw_ids_must_be_24_bytes() -> None:
    with pytest.raises(InvalidIdError, match="24 bytes, got 23"):
        InvocationId.from_bytes(b"\0" * 23)


def test_workflow_and_idempotent_ids_are_deterministic_and_scoped() -> None:
    assert InvocationId.for_workflow("Order", "o-1") == InvocationId.for_workflow("Order", "o-1")
    assert InvocationId.for_workflow("Order", "o-1") != InvocationId.for_workflow("Order", "o-2")
    assert InvocationId.for_workflow("Order", "o-1") != InvocationId.for_workflow("Other", "o-1")
    a = InvocationId.for_idempotent_request("Pay", "charge", "k1")
    assert a == InvocationId.for_idempotent_request("Pay", "charge", "k1")
    assert a != InvocationId.for_idempotent_request("Pay", "refund", "k1")
    assert a != InvocationId.for_idempotent_request("Pay", "charge", "k1", key="user")
    # Keyed targets live in the partition of their key, so an object's invocations share it.
    keyed = InvocationId.for_idempotent_request("Cart", "add", "k1", key="user-7")
    assert keyed.partition_key == InvocationId.for_workflow("Any", "user-7").partition_key


def test_awakeable_id_embeds_invocation_and_signal_index() -> None:
    inv = InvocationId.parse(DOC_INVOCATION_ID)
    awk = AwakeableId(inv, 17)
    text = str(awk)
    assert text.startswith("sign_1") and "=" not in text
    parsed = AwakeableId.parse(text)
    assert parsed == awk and parsed.invocation_id == inv and parsed.signal_index == 17
    legacy = AwakeableId(inv, 3, legacy=True)
    assert str(legacy).startswith("prom_1")
    assert AwakeableId.parse(str(legacy)) == legacy


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("awk_1abc", "must start with 'sign_1'"),
        ("sign_1AAAA", "must encode 28 bytes"),
        ("sign_1****", "not base64url"),
        ("sign_1AAAA==", "padding"),
    ],
)
def test_bad_awakeable_ids_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(InvalidIdError, match=reason):
        AwakeableId.parse(text)


def test_random_seed_is_stable_per_invocation() -> None:
    a, b = InvocationId.new(), InvocationId.new()
    assert a.random_seed() == InvocationId.parse(str(a)).random_seed()
    assert a.random_seed() != b.random_seed()
    assert 0 <= a.random_seed() < 2**64
