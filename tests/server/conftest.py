"""Fixtures: perdure's server (a real subprocess) with the official-SDK services registered."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.official import RestateServer, serve_asgi
from tests.support.perdure_server import PerdureServer

SERVICES = "tests.server.official_services:app"


@dataclass
class Deployed:
    server: PerdureServer | RestateServer
    url: str
    effects: Path
    client: httpx.Client
    admin: httpx.Client

    def effect_lines(self, kind: str) -> list[str]:
        path = self.effects / f"{kind}.log"
        return path.read_text().splitlines() if path.exists() else []


@contextmanager
def deployed(
    tmp: Path,
    *,
    use_http_11: bool = False,
    official: bool = False,
    services: str = SERVICES,
    store: str | None = None,
) -> Iterator[Deployed]:
    """perdure's (or the official) server + the ``services`` deployment (hypercorn; by default
    the official-SDK services), registered. ``store``: perdure's store, "sqlite" or "postgres"
    (default: $PERDURE_TEST_STORE, else sqlite)."""
    effects = tmp / "effects"
    effects.mkdir(parents=True)
    previous = os.environ.get("PERDURE_EFFECTS")
    os.environ["PERDURE_EFFECTS"] = str(effects)
    try:
        started = RestateServer.start(tmp) if official else PerdureServer.start(tmp, store=store)
        with started as server, serve_asgi(services, tmp) as url:
            server.register(url, use_http_11=use_http_11)
            # A fresh connection per request: the official server may close one right after an
            # error answer, and a request racing that close fails with a transport error.
            fresh = httpx.Limits(max_keepalive_connections=0)
            with (
                httpx.Client(base_url=server.ingress, timeout=30.0, limits=fresh) as client,
                httpx.Client(base_url=server.admin, timeout=30.0, limits=fresh) as admin,
            ):
                yield Deployed(server, url, effects, client, admin)
    finally:
        if previous is None:
            os.environ.pop("PERDURE_EFFECTS", None)
        else:
            os.environ["PERDURE_EFFECTS"] = previous


@pytest.fixture(scope="module", params=["perdure", "official"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Deployed]:  # fmt: skip
    """The same deployment on perdure's server and on the official one: scenarios must agree."""
    with deployed(tmp_path_factory.mktemp(request.param),
                  official=request.param == "official") as d:  # fmt: skip
        yield d
