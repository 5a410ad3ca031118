"""The test harness itself: the official server runs an official SDK deployment, over h2c and
HTTP/1.1. If this fails, every interop test would fail for reasons unrelated to perdure."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.official import RestateServer, serve_asgi

pytestmark = pytest.mark.interop


@pytest.mark.parametrize("use_http_11", [False, True], ids=["h2c", "http1.1"])
def test_official_server_runs_official_sdk(tmp_path: Path, use_http_11: bool) -> None:
    with (
        RestateServer.start(tmp_path) as restate,
        serve_asgi("tests.interop.official_greeter:app", tmp_path) as url,
    ):
        deployment = restate.register(url, use_http_11=use_http_11)
        assert deployment["id"].startswith("dp_1")
        resp = httpx.post(f"{restate.ingress}/Greeter/greet", json="Ann", timeout=30)
        assert resp.status_code == 200
        assert resp.json() == "Hello Ann"
        assert resp.headers["x-restate-id"].startswith("inv_1")
