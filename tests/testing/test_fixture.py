"""The perdure_harness fixture, which pip-installed perdure registers with pytest (test_docs
runs a user's suite in a pytest of its own, with no conftest)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from perdure.testing import Harness
from perdure.testing.pytest_plugin import HarnessFactory
from tests.testing.services import add, counter, greet, greet_later, greeter


def test_the_plugin_is_registered_by_the_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("perdure")
    assert plugin is not None and plugin.__name__ == "perdure.testing.pytest_plugin"


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_sockets")
async def test_the_fixture_makes_harnesses(perdure_harness: HarnessFactory, tmp_path: Path) -> None:
    async with perdure_harness([greeter]) as h:
        assert isinstance(h, Harness)
        assert await h.client.service(greet).request("Ann") == "Hello Ann"
        assert await h.client.service(greet_later).request("Bo") == "Hello Bo, five days later"
    async with perdure_harness([counter], always_replay=True, virtual_clock=True) as h:
        await h.client.object_send(add, "ann").send(2, delay=timedelta(days=1))
        await h.settle()
        assert h.state(counter, "ann") == {"total": 2}
    # each harness keeps its store under the test's tmp_path, for a look after a failure
    assert sorted(p.name for p in tmp_path.iterdir()) == ["perdure-1", "perdure-2"]
    with pytest.raises(TypeError, match="tmp_path"):
        perdure_harness([greeter], data_dir=tmp_path)  # type: ignore[call-arg]
