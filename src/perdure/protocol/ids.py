"""Identifiers in Restate's formats: invocation ids, awakeable ids, deployment ids.

An invocation id is 24 raw bytes on the service protocol (partition key u64 BE ‖ uuid u128 BE) and
``inv_1`` + 11 + 22 base62 characters in text (38 characters). Each integer is byte-swapped before
the base62 encoding (alphabet 0-9a-zA-Z) and left-padded with '0'. Ids of workflow runs and of
requests with an idempotency key are derived from what identifies them, so a duplicate request finds
the original; all other ids are random ULIDs. Awakeable ids embed the raw invocation id and a signal
index: ``sign_1`` + base64url (no padding) of the 28 bytes (``prom_1`` is the pre-V4 form).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import time
from dataclasses import dataclass, field

from perdure.protocol.errors import InvalidIdError

_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_DIGIT = {c: i for i, c in enumerate(_ALPHABET)}
_U64_CHARS = 11
_U128_CHARS = 22

INVOCATION_ID_PREFIX = "inv_1"
DEPLOYMENT_ID_PREFIX = "dp_1"
AWAKEABLE_ID_PREFIX = "sign_1"
LEGACY_AWAKEABLE_ID_PREFIX = "prom_1"
FIRST_AWAKEABLE_SIGNAL = 17
"""Signal indices 1-16 are reserved for built-in signals (1 = cancel); awakeables start here."""


# ---------------------------------------------------------------------------------------------
# base62 of byte-swapped integers
# ---------------------------------------------------------------------------------------------


def _swap(value: int, width: int) -> int:
    return int.from_bytes(value.to_bytes(width, "little"), "big")


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
"""Two base62 digits per division: half the big-integer divisions of a digit-by-digit loop."""


def _encode_int(value: int, width: int, chars: int) -> str:
    n = _swap(value, width)
    pairs = _PAIRS
    digits = []
    while n:
        n, rem = divmod(n, 3844)  # 62 ** 2
        digits.append(pairs[rem])
    return "".join(reversed(digits)).lstrip("0").rjust(chars, "0")


def _decode_int(text: str, width: int, what: str) -> int:
    n = 0
    for c in text:
        digit = _DIGIT.get(c)
        if digit is None:
            raise InvalidIdError(f"{what}: {c!r} is not a base62 character")
        n = n * 62 + digit
    if n >> (8 * width):
        raise InvalidIdError(f"{what}: value does not fit in {8 * width} bits")
    return _swap(n, width)


def _new_ulid() -> int:
    """A ULID as an integer: 48 bits of milliseconds, then 80 random bits."""
    millis = time.time_ns() // 1_000_000
    return (millis << 80) | int.from_bytes(os.urandom(10), "big")


def _digest_u128(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256(",".join(parts).encode()).digest()[:16], "big")


def partition_key_of(key: str) -> int:
    """The partition key (u64) of an object/workflow key or an idempotency key.

    perdure's own stable hash: Restate clients treat ids as opaque, so it need not be Restate's.
    """
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


# ---------------------------------------------------------------------------------------------
# Invocation ids
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class InvocationId:
    """An invocation's identity: the partition it lives in and a 128-bit uuid.

    The text form is computed once per object and kept (``_text``): storage keys, logs and
    messages ask for it on every use.
    """

    partition_key: int
    uuid: int
    _text: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.partition_key < 1 << 64:
            raise InvalidIdError(f"partition key {self.partition_key} is not a u64")
        if not 0 <= self.uuid < 1 << 128:
            raise InvalidIdError(f"uuid {self.uuid} is not a u128")

    # -- constructors ------------------------------------------------------------------------

    @classmethod
    def new(cls, partition_key: int | None = None) -> InvocationId:
        """A fresh id (a ULID), in the given partition or a random one."""
        if partition_key is None:
            partition_key = int.from_bytes(os.urandom(8), "big")
        return cls(partition_key, _new_ulid())

    @classmethod
    def for_workflow(cls, workflow: str, key: str, *, scope: str | None = None) -> InvocationId:
        """The id of a workflow's run for a key: the same every time it is computed."""
        parts = ["wf", *([scope] if scope is not None else []), workflow, key]
        return cls(partition_key_of(key), _digest_u128(*parts))

    @classmethod
    def for_idempotent_request(
        cls,
        service: str,
        handler: str,
        idempotency_key: str,
        *,
        key: str | None = None,
        scope: str | None = None,
    ) -> InvocationId:
        """The id of a request with an idempotency key (scoped by service, object key, handler)."""
        parts = [
            "ik",
            *([scope] if scope is not None else []),
            service,
            *([key] if key is not None else []),
            handler,
            idempotency_key,
        ]
        pk = partition_key_of(key if key is not None else idempotency_key)
        return cls(pk, _digest_u128(*parts))

    @classmethod
    def from_bytes(cls, raw: bytes) -> InvocationId:
        """Parse the 24-byte form carried in StartMessage.id."""
        if len(raw) != 24:
            raise InvalidIdError(f"a raw invocation id is 24 bytes, got {len(raw)}")
        return cls(int.from_bytes(raw[:8], "big"), int.from_bytes(raw[8:], "big"))

    @classmethod
    def parse(cls, text: str) -> InvocationId:
        """Parse ``inv_1…``; InvalidIdError says what is wrong with a bad string.

        The ids of live invocations are parsed again and again (storage rows, URLs): the last
        few thousand are remembered (ids are immutable, so one object can serve every caller).
        """
        return _parse_invocation_id(text)

    @classmethod
    def _parse(cls, text: str) -> InvocationId:
        if not text.startswith(INVOCATION_ID_PREFIX):
            raise InvalidIdError(f"invocation id {text!r} must start with {INVOCATION_ID_PREFIX!r}")
        body = text[len(INVOCATION_ID_PREFIX) :]
        if len(body) != _U64_CHARS + _U128_CHARS:
            raise InvalidIdError(
                f"invocation id {text!r} must be {len(INVOCATION_ID_PREFIX) + 33} characters long, "
                f"not {len(text)}"
            )
        what = f"invocation id {text!r}"
        parsed = cls(
            _decode_int(body[:_U64_CHARS], 8, what),
            _decode_int(body[_U64_CHARS:], 16, what),
        )
        object.__setattr__(parsed, "_text", text)
        return parsed

    # -- forms -------------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return self.partition_key.to_bytes(8, "big") + self.uuid.to_bytes(16, "big")

    def __str__(self) -> str:
        text = self._text
        if text is None:
            text = (
                INVOCATION_ID_PREFIX
                + _encode_int(self.partition_key, 8, _U64_CHARS)
                + _encode_int(self.uuid, 16, _U128_CHARS)
            )
            object.__setattr__(self, "_text", text)
        return text

    def random_seed(self) -> int:
        """The u64 seed of the SDK's deterministic RNG (StartMessage.random_seed), stable per id."""
        return int.from_bytes(hashlib.sha256(self.to_bytes()).digest()[:8], "big")


_parse_invocation_id = functools.lru_cache(maxsize=4096)(InvocationId._parse)


# ---------------------------------------------------------------------------------------------
# Awakeable ids
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AwakeableId:
    """Names a signal of an invocation: ``sign_1`` + base64url(raw invocation id ‖ u32 index).

    ``legacy`` ids (``prom_1``, protocol V1-V3) carry a journal entry index instead of a signal
    index; they are parsed so that the server can reject them with a precise message.
    """

    invocation_id: InvocationId
    signal_index: int
    legacy: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.signal_index < 1 << 32:
            raise InvalidIdError(f"signal index {self.signal_index} is not a u32")

    @classmethod
    def parse(cls, text: str) -> AwakeableId:
        if text.startswith(AWAKEABLE_ID_PREFIX):
            legacy = False
        elif text.startswith(LEGACY_AWAKEABLE_ID_PREFIX):
            legacy = True
        else:
            raise InvalidIdError(
                f"awakeable id {text!r} must start with {AWAKEABLE_ID_PREFIX!r} "
                f"(or {LEGACY_AWAKEABLE_ID_PREFIX!r})"
            )
        encoded = text[len(AWAKEABLE_ID_PREFIX) :]
        if "=" in encoded:
            raise InvalidIdError(f"awakeable id {text!r} must not carry base64 padding")
        try:
            raw = base64.b64decode(
                encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True
            )
        except (binascii.Error, ValueError):
            raise InvalidIdError(f"awakeable id {text!r} is not base64url") from None
        if len(raw) != 28:
            raise InvalidIdError(
                f"awakeable id {text!r} must encode 28 bytes (invocation id + index), "
                f"not {len(raw)}"
            )
        return cls(
            InvocationId.from_bytes(raw[:24]), int.from_bytes(raw[24:], "big"), legacy=legacy
        )

    def __str__(self) -> str:
        raw = self.invocation_id.to_bytes() + self.signal_index.to_bytes(4, "big")
        prefix = LEGACY_AWAKEABLE_ID_PREFIX if self.legacy else AWAKEABLE_ID_PREFIX
        return prefix + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---------------------------------------------------------------------------------------------
# Deployment ids
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeploymentId:
    """A registered deployment: ``dp_1`` + 22 base62 characters of a ULID."""

    ulid: int

    @classmethod
    def new(cls) -> DeploymentId:
        return cls(_new_ulid())

    @classmethod
    def parse(cls, text: str) -> DeploymentId:
        if not text.startswith(DEPLOYMENT_ID_PREFIX):
            raise InvalidIdError(f"deployment id {text!r} must start with {DEPLOYMENT_ID_PREFIX!r}")
        body = text[len(DEPLOYMENT_ID_PREFIX) :]
        if len(body) != _U128_CHARS:
            raise InvalidIdError(
                f"deployment id {text!r} must be {len(DEPLOYMENT_ID_PREFIX) + _U128_CHARS} "
                f"characters long, not {len(text)}"
            )
        return cls(_decode_int(body, 16, f"deployment id {text!r}"))

    def __str__(self) -> str:
        return DEPLOYMENT_ID_PREFIX + _encode_int(self.ulid, 16, _U128_CHARS)
