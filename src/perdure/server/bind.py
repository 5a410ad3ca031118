"""What a listener's HOST:PORT flag may be: one rule for `perdure server` and `perdure dev`."""

from __future__ import annotations


def split_bind(bind: str) -> tuple[str, int] | None:
    """HOST and PORT of ``bind``, or None when it is not HOST:PORT with a port of 0-65535.

    Only ASCII digits count: ``str.isdigit`` accepts characters such as '²' that ``int`` refuses.
    """
    host, _, port = bind.rpartition(":")
    if not host or not port or not port.isascii() or not port.isdigit() or len(port) > 5:
        return None
    number = int(port)
    if number > 65535:
        return None
    return host.strip("[]"), number
