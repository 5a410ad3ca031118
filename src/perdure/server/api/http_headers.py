"""What a header a client asks the server to send (a deployment's ``additional_headers``) may be.

The name must be an HTTP token (RFC 9110), so neither a pseudo-header (``:path``) nor one with
spaces or separators; the value must not hold CR, LF or NUL, which would split or end the header
block. Checked when a deployment is registered, so a bad header is a 400 there instead of a
failure on every later request to the deployment.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
               "te", "host", "content-length"}  # fmt: skip


def header_problem(name: object, value: object) -> str | None:
    """Why ``name: value`` cannot be sent as an additional header, or None when it can."""
    if not isinstance(name, str) or not isinstance(value, str):
        return f"header {name!r}: names and values must be strings"
    if not _TOKEN.match(name):
        return (
            f"header name {name!r} is not a valid HTTP header name (letters, digits and "
            "!#$%&'*+-.^_`|~ only; pseudo-headers such as ':path' are not allowed)"
        )
    if name.lower() in _HOP_BY_HOP:
        return f"header {name!r} is set by the server and cannot be overridden"
    if any(c in value for c in "\r\n\0"):
        return f"header {name!r}: the value must not contain CR, LF or NUL"
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return f"header {name!r}: the value must be Latin-1 text"
    return None
