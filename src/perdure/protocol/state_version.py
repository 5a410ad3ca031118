"""The version of one key's state, as Restate's admin API computes it (http-api.md 3.6): the CLI
sends it with a state edit and the server refuses the edit when the state changed since.

SHA-256 over the key-sorted pairs, each as: its index (8 bytes, big-endian), 0x01, the key, 0x02,
the value, 0x03; encoded as base64url without padding.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable


def state_version(pairs: Iterable[tuple[bytes, bytes]]) -> str:
    digest = hashlib.sha256()
    for index, (key, value) in enumerate(sorted(pairs)):
        digest.update(index.to_bytes(8, "big") + b"\x01" + key + b"\x02" + value + b"\x03")
    return base64.urlsafe_b64encode(digest.digest()).decode().rstrip("=")
