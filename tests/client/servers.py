"""The servers the client's scenario tests run against. Each yields an object with ``.ingress``,
``.admin`` and ``.register(uri, use_http_11=...)``; perdure's own server plugs in here as another
parameter of the ``server`` fixture when it exists."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from tests.support.official import RestateServer


class IngressServer(Protocol):
    ingress: str
    admin: str

    def register(self, uri: str, *, use_http_11: bool = False) -> Any: ...


@contextmanager
def official(tmp: Path) -> Iterator[IngressServer]:
    with RestateServer.start(tmp) as server:
        yield server


SERVERS = {"official": official}
