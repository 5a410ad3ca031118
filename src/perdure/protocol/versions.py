"""Content types that negotiate the service protocol version and the discovery manifest version."""

from __future__ import annotations

INVOCATION_CONTENT_TYPE_PREFIX = "application/vnd.restate.invocation.v"
PROTOCOL_VERSION = 6
"""The service protocol version perdure speaks (the official server 1.7's default)."""

MIN_MANIFEST_VERSION = 1
MAX_MANIFEST_VERSION = 4


def invocation_content_type(version: int = PROTOCOL_VERSION) -> str:
    return f"{INVOCATION_CONTENT_TYPE_PREFIX}{version}"


def parse_invocation_content_type(content_type: str | None) -> int | None:
    """The protocol version named by an invocation request's content type, or None.

    The match is exact (no parameters), as the official server requires of responses.
    """
    if not content_type or not content_type.startswith(INVOCATION_CONTENT_TYPE_PREFIX):
        return None
    digits = content_type[len(INVOCATION_CONTENT_TYPE_PREFIX) :]
    valid = digits.isascii() and digits.isdigit() and not digits.startswith("0")
    return int(digits) if valid else None


def manifest_content_type(version: int) -> str:
    return f"application/vnd.restate.endpointmanifest.v{version}+json"


MANIFEST_ACCEPT = ", ".join(
    manifest_content_type(v) for v in range(MIN_MANIFEST_VERSION, MAX_MANIFEST_VERSION + 1)
)
"""The Accept header a server sends on discovery (all versions it can read)."""


def parse_manifest_content_type(content_type: str | None) -> int | None:
    """The manifest version of a discovery response's content type (exact match), or None."""
    for version in range(MIN_MANIFEST_VERSION, MAX_MANIFEST_VERSION + 1):
        if content_type == manifest_content_type(version):
            return version
    return None


def negotiate_manifest_version(accept: str | None, supported: range = range(2, 5)) -> int | None:
    """The manifest version an SDK answers a discovery request with.

    The highest supported version listed in ``accept``; with no Accept header at all, the lowest
    supported one; None when the header lists none we support (answer 415).
    """
    if accept is None:
        return supported.start
    offered = {
        parse_manifest_content_type(part.split(";", 1)[0].strip()) for part in accept.split(",")
    }
    candidates = [v for v in supported if v in offered]
    return max(candidates) if candidates else None
