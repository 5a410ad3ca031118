"""The servers scenarios run against. Each yields an object with ``.ingress``, ``.admin`` and
``.register(uri, use_http_11=...)`` with the perdure-SDK services already registered; a new
server (perdure's own) plugs in as another parameter of ``server``.

Modes of the official restate-server 1.7:
* ``h2c``: the deployment registered over HTTP/2 cleartext, bidirectional streams;
* ``http1.1``: registered with ``use_http_11`` (request/response: every await that the journal
  cannot satisfy suspends);
* ``always-suspend``: inactivity timeout 0, so the server closes the input at once and the
  handler is replayed at every await.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.official import RestateServer, serve_asgi

FAST_RETRIES = """
[default-retry-policy]
initial-interval = "50ms"
exponentiation-factor = 1.5
max-interval = "500ms"
max-attempts = 30
on-max-attempts = "kill"
"""
ALWAYS_SUSPEND = (
    FAST_RETRIES
    + """
[worker.invoker]
inactivity-timeout = "0s"
"""
)

MODES = {
    "official-h2c": (FAST_RETRIES, False),
    "official-http1.1": (FAST_RETRIES, True),
    "official-always-suspend": (ALWAYS_SUSPEND, False),
}


@pytest.fixture(scope="session", params=list(MODES))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    config, use_http_11 = MODES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    with (
        RestateServer.start(tmp, extra_config=config) as restate,
        serve_asgi("tests.scenarios.services:app", tmp) as url,
    ):
        restate.register(url, use_http_11=use_http_11)
        restate.mode = request.param  # type: ignore[attr-defined]
        yield restate
