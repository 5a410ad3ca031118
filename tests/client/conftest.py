"""Fixtures for the client tests: ``mode`` runs a unit test once with Client and once with
AsyncClient; the interop fixtures live in servers.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.client.wire import Recorder


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
