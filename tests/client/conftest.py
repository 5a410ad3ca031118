"""Fixtures for the client tests: ``run`` runs a unit test once with Client and once with
AsyncClient; ``server`` is a real ingress (see servers.py) with the official-SDK services."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.client.servers import SERVERS
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


# -- interop: a server with the official-SDK services registered ---------------------------------


@dataclass
class Deployment:
    """A running ingress with tests.client.official_services registered."""

    ingress: str
    admin: str
    name: str


@pytest.fixture(scope="session", params=sorted(SERVERS))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """One server per kind for the whole run, with the services deployed (h2c); tests use
    fresh keys so they do not meet."""
    tmp = tmp_path_factory.mktemp(f"client-{request.param}")
    with (
        SERVERS[request.param](tmp) as running,
        serve_asgi("tests.client.official_services:app", tmp) as url,
    ):
        running.register(url)
        yield Deployment(running.ingress, running.admin, request.param)
