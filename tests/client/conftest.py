"""Fixtures for the client tests: ``run`` runs a unit test once with Client and once with
AsyncClient; ``server`` is a real ingress (see servers.py) with the official-SDK services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client.servers import SERVERS, IngressServer
from tests.client.wire import Recorder
from tests.support.official import serve_asgi


class Runner:
    """Runs ``op(client)`` on a fresh Client or AsyncClient (awaiting the result for the latter)."""

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def __call__(self, recorder: Recorder, op: Callable[[Any], Any], **client_kwargs: Any) -> Any:
        if self.mode == "sync":
            with recorder.client(**client_kwargs) as client:
                return op(client)

        async def main() -> Any:
            async with recorder.async_client(**client_kwargs) as client:
                return await op(client)

        return asyncio.run(main())


@pytest.fixture(params=["sync", "async"])
def run(request: pytest.FixtureRequest) -> Runner:
    return Runner(request.param)


# -- interop: a real ingress, and the official-SDK services registered with it -------------------


@pytest.fixture(scope="session", params=sorted(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[IngressServer]:
    """A running server of each kind (``.ingress``, ``.admin``, ``.register``), one per run."""
    tmp = tmp_path_factory.mktemp(f"client-{request.param}")
    with SERVERS[request.param](tmp) as running:
        yield running


@dataclass
class Deployment:
    """A server with tests.client.official_services registered (h2c)."""

    ingress: str
    admin: str


@pytest.fixture(scope="session")
def deployed(
    server: IngressServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Tests share it and use fresh keys so they do not meet."""
    tmp = tmp_path_factory.mktemp("client-services")
    with serve_asgi("tests.client.official_services:app", tmp) as url:
        server.register(url)
        yield Deployment(server.ingress, server.admin)


@pytest.fixture(scope="session")
def perdure_deployed(
    server: IngressServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The same server with tests.client.perdure_services (perdure-SDK services) registered."""
    tmp = tmp_path_factory.mktemp("client-perdure-services")
    with serve_asgi("tests.client.perdure_services:app", tmp) as url:
        server.register(url)
        yield Deployment(server.ingress, server.admin)
