"""Request identity v1: how a Restate server proves to a deployment that a request comes from it.

The server signs every request it sends to a deployment (discovery and each attempt) with an
Ed25519 key, and a deployment that knows the public key refuses requests without a valid
signature. Both sides live here because they must agree byte for byte with Restate's:

* headers ``x-restate-signature-scheme: v1`` and ``x-restate-jwt-v1: <JWT>`` (an unsigned request
  carries neither);
* the JWT header is ``{"typ": "JWT", "alg": "EdDSA", "kid": "publickeyv1_…"}``, the claims
  ``aud`` (the protocol path: ``/discover`` or ``/invoke/{service}/{handler}``, without the
  deployment URL's own path prefix), ``iat``, ``nbf`` = iat - 60 s, ``exp`` = iat + 60 s, and
  ``sub`` = the object or workflow key when the target has one;
* a public key is written ``publickeyv1_`` + base58 (Bitcoin alphabet) of its raw 32 bytes;
* the private key is an Ed25519 PKCS#8 PEM file (``openssl genpkey -algorithm ed25519``).

Times (seconds since the epoch) and key files' bytes are passed in: no clock, no disk.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from perdure.protocol.errors import IdentityError

__all__ = ["IdentityError", "SigningKey", "Verifier", "key_id", "parse_key_id", "sign"]

SCHEME_HEADER = "x-restate-signature-scheme"
JWT_HEADER = "x-restate-jwt-v1"
SCHEME_V1 = "v1"
KEY_PREFIX = "publickeyv1_"
LEEWAY_SECONDS = 60
"""How far before ``iat`` a token becomes valid (``nbf``) and after it expires (``exp``): the
clock skew a deployment tolerates."""

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


# -- encodings -------------------------------------------------------------------------------------


def b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, digit = divmod(number, 58)
        digits.append(_B58[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58.find(char)
        if digit < 0:
            raise IdentityError(f"{char!r} is not a base58 character")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise IdentityError("the JWT is not base64url") from None


def key_id(public: Ed25519PublicKey) -> str:
    """The ``publickeyv1_…`` form of a public key (what deployments are configured with)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + b58encode(raw)


def parse_key_id(text: str) -> Ed25519PublicKey:
    if not text.startswith(KEY_PREFIX):
        raise IdentityError(f"identity keys start with {KEY_PREFIX!r}; got {text[:20]!r}")
    raw = b58decode(text[len(KEY_PREFIX) :])
    if len(raw) != 32:
        raise IdentityError(f"an identity key holds 32 bytes; {text!r} holds {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


# -- the server's side: signing --------------------------------------------------------------------


class SigningKey:
    """The server's private key; ``headers()`` signs one request."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.kid = key_id(private.public_key())
        self._header = _b64url(
            json.dumps({"typ": "JWT", "alg": "EdDSA", "kid": self.kid}, separators=(",", ":"))
            .encode()
        )  # fmt: skip

    @classmethod
    def from_pem(cls, data: bytes, path: str = "the key") -> SigningKey:
        """Load an Ed25519 PKCS#8 PEM private key (``path`` names it in errors)."""
        if data.count(b"-----BEGIN ") != 1:
            raise IdentityError(f"{path} must hold exactly one PEM private key")
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise IdentityError(f"{path} is not an unencrypted PKCS#8 PEM key: {exc}") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise IdentityError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
        return cls(private)

    def token(self, path: str, sub: str | None, now: int) -> str:
        claims: dict[str, Any] = {
            "aud": path,
            "exp": now + LEEWAY_SECONDS,
            "iat": now,
            "nbf": now - LEEWAY_SECONDS,
        }
        if sub is not None:
            claims["sub"] = sub
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}"
        signature = self._private.sign(signing_input.encode("ascii"))
        return f"{signing_input}.{_b64url(signature)}"

    def headers(self, path: str, sub: str | None, now: int) -> list[tuple[str, str]]:
        """The two headers that sign a request to ``path`` (the protocol path)."""
        return [(SCHEME_HEADER, SCHEME_V1), (JWT_HEADER, self.token(path, sub, now))]


def sign(key: SigningKey | None, path: str, sub: str | None, now: float) -> list[tuple[str, str]]:
    """The identity headers of one request: none when the server has no key (unsigned)."""
    return [] if key is None else key.headers(path, sub, int(now))


# -- the deployment's side: verifying --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verifier:
    """The public keys a deployment accepts; ``verify`` raises IdentityError on a bad request."""

    keys: Mapping[str, Ed25519PublicKey]

    @classmethod
    def of(cls, key_ids: Iterable[str]) -> Verifier:
        keys = {text: parse_key_id(text) for text in key_ids}
        if not keys:
            raise IdentityError("no identity keys given")
        return cls(keys)

    def verify(self, headers: Mapping[str, str], path: str, now: float) -> None:
        scheme = headers.get(SCHEME_HEADER)
        if scheme is None:
            raise IdentityError(f"the request is not signed (no {SCHEME_HEADER} header)")
        if scheme != SCHEME_V1:
            raise IdentityError(f"unsupported signature scheme {scheme[:20]!r} (expected v1)")
        token = headers.get(JWT_HEADER)
        if not token:
            raise IdentityError(f"the v1 signature scheme needs the {JWT_HEADER} header")
        parts = token.split(".")
        if len(parts) != 3:
            raise IdentityError("the JWT must have three parts")
        header, claims = _json_object(parts[0], "header"), _json_object(parts[1], "claims")
        if header.get("typ") != "JWT" or header.get("alg") != "EdDSA":
            raise IdentityError('the JWT header must say "typ": "JWT" and "alg": "EdDSA"')
        kid = header.get("kid")
        public = self.keys.get(kid) if isinstance(kid, str) else None
        if public is None:
            raise IdentityError(f"the JWT was signed by an unknown key {str(kid)[:60]!r}")
        try:
            public.verify(_unb64url(parts[2]), f"{parts[0]}.{parts[1]}".encode("ascii"))
        except (InvalidSignature, UnicodeEncodeError):
            raise IdentityError("the JWT signature is invalid") from None
        if claims.get("aud") != path:
            raise IdentityError(f"the JWT is for {str(claims.get('aud'))[:80]!r}, not {path!r}")
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(nbf, int | float) or not isinstance(exp, int | float):
            raise IdentityError("the JWT needs numeric nbf and exp claims")
        if nbf > now:
            raise IdentityError("the JWT is not valid yet (nbf; are the clocks in sync?)")
        if exp <= now:
            raise IdentityError("the JWT has expired (exp; are the clocks in sync?)")


def _json_object(part: str, name: str) -> dict[str, Any]:
    try:
        value = json.loads(_unb64url(part))
    except ValueError:
        raise IdentityError(f"the JWT {name} is not JSON") from None
    if not isinstance(value, dict):
        raise IdentityError(f"the JWT {name} is not a JSON object")
    return value


def protocol_path(path: str) -> str | None:
    """The part of a request path a signature covers: ``/discover`` or
    ``/invoke/{service}/{handler}``, whatever prefix the deployment is served under."""
    parts = [p for p in path.split("/") if p]
    if parts[-1:] == ["discover"]:
        return "/discover"
    if len(parts) >= 3 and parts[-3] == "invoke":
        return "/" + "/".join(parts[-3:])
    return None
