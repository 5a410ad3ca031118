"""The modes really differ: in request/response and always-suspend modes a handler is
replayed at its awaits (started again), over h2c it runs in one attempt."""

from __future__ import annotations

from typing import Any

import pytest

from tests.scenarios.support import ok, unique

pytestmark = pytest.mark.interop


def test_replay_mode(server: Any) -> None:
    starts = ok(server, "Probe/starts", unique("probe"))
    if server.mode.endswith("-h2c"):
        assert starts == 1
    else:
        assert starts == 3
