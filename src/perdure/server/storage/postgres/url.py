"""PostgreSQL URLs as perdure shows them: never with their password."""

from __future__ import annotations


def redact(url: str) -> str:
    """The URL without its password (for logs and error messages)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
