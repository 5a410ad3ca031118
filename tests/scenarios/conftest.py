"""The servers scenarios run against. Each yields an object with ``.ingress``, ``.admin``,
``.register(uri, use_http_11=...)`` and ``.mode``, with the perdure-SDK services already
registered.

Modes, for the official restate-server 1.7 (``official-*``) and perdure's server (``perdure-*``):
* ``h2c``: the deployment registered over HTTP/2 cleartext, bidirectional streams;
* ``http1.1``: registered with ``use_http_11`` (request/response: every await that the journal
  cannot satisfy suspends);
* ``always-suspend``: inactivity timeout 0, so the server closes the input at once and the
  handler is replayed at every await.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from tests.support.official import RestateServer, serve_asgi
from tests.support.perdure_server import PerdureServer

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


def _official(config: str) -> Any:
    return lambda tmp: RestateServer.start(tmp, extra_config=config)


def _perdure(*args: str, store: str | None = None) -> Any:
    return lambda tmp: PerdureServer.start(tmp, args=args, store=store)


# mode -> (start the server in a tmp dir, register the deployment over HTTP/1.1)
MODES: dict[str, tuple[Any, bool]] = {
    "official-h2c": (_official(FAST_RETRIES), False),
    "official-http1.1": (_official(FAST_RETRIES), True),
    "official-always-suspend": (_official(ALWAYS_SUSPEND), False),
    "perdure-h2c": (_perdure(), False),
    "perdure-http1.1": (_perdure(), True),
    "perdure-always-suspend": (_perdure("--inactivity-timeout", "0s"), False),
    # The same scenarios with durable state in PostgreSQL (every other mode: $PERDURE_TEST_STORE).
    "perdure-postgres-h2c": (_perdure(store="postgres"), False),
}


@pytest.fixture(scope="session", params=list(MODES))
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    start, use_http_11 = MODES[request.param]
    tmp: Path = tmp_path_factory.mktemp(request.param)
    started: AbstractContextManager[Any] = start(tmp)
    with started as instance, serve_asgi("tests.scenarios.services:app", tmp) as url:
        instance.register(url, use_http_11=use_http_11)
        instance.mode = request.param
        yield instance
