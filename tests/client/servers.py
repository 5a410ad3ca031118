"""The servers the client's scenario tests run against: the official Restate server (the
reference) and perdure's own. Each yields an object with ``.ingress``, ``.admin`` and
``.register(uri, use_http_11=...)``; every client scenario runs once per entry of SERVERS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from tests.support.official import RestateServer
from tests.support.perdure_server import PerdureServer


class IngressServer(Protocol):
    ingress: str
    admin: str

    def register(self, uri: str, *, use_http_11: bool = False) -> Any: ...


@contextmanager
def official(tmp: Path) -> Iterator[IngressServer]:
    with RestateServer.start(tmp) as server:
        yield server


@contextmanager
def perdure(tmp: Path) -> Iterator[IngressServer]:
    with PerdureServer.start(tmp) as server:
        yield server


SERVERS = {"official": official, "perdure": perdure}
