"""The pytest plugin (entry point ``pytest11``): the ``perdure_harness`` fixture.

    @pytest.mark.asyncio
    async def test_greet(perdure_harness):
        async with perdure_harness([greeter]) as h:
            assert await h.client.service(greet).request("Ann") == "Hello Ann"

The fixture is a factory: it takes ``Harness``'s arguments and keeps each harness's store under
the test's ``tmp_path`` (so a failed test leaves it for inspection). Use it from async tests
(pytest-asyncio, or anyio's plugin). Importing this module imports nothing of the server, so
the plugin costs nothing in test runs that do not use it.
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from perdure.server.registry import Defaults
    from perdure.testing.harness import Harness, Services


class HarnessFactory(Protocol):
    """What the ``perdure_harness`` fixture gives a test: ``Harness`` without ``data_dir``."""

    def __call__(
        self,
        services: Services,
        *,
        virtual_clock: bool = True,
        always_replay: bool = False,
        defaults: Defaults | None = None,
        start: datetime | None = None,
    ) -> Harness: ...


@pytest.fixture
def perdure_harness(tmp_path: Path) -> HarnessFactory:
    """A factory of ``perdure.testing.Harness`` (use each as ``async with``), stores in tmp_path."""
    from perdure.testing.harness import Harness  # noqa: PLC0415 - keep the plugin light

    numbers = itertools.count(1)

    def factory(services: Services, **options: Any) -> Harness:
        if "data_dir" in options:
            raise TypeError("perdure_harness keeps the store in tmp_path; use Harness for data_dir")
        return Harness(services, data_dir=tmp_path / f"perdure-{next(numbers)}", **options)

    return factory
