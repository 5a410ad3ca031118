"""A failed discovery says what failed, on perdure's server as on the official one: the URI
called, the reason, and the official error code. perdure answers 400 (the registration request
cannot succeed as sent) where the official server answers 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.official import RestateServer
from tests.support.perdure_server import PerdureServer
from tests.support.raw_deployment import raw_deployment

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module", params=["perdure", "official"])
def admin(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[str, httpx.Client]]:  # fmt: skip
    tmp: Path = tmp_path_factory.mktemp(request.param)
    starter = RestateServer.start if request.param == "official" else PerdureServer.start
    with starter(tmp) as server, httpx.Client(base_url=server.admin, timeout=60.0) as client:
        yield request.param, client


def _failure(admin: tuple[str, httpx.Client], uri: str, **extra: object) -> tuple[str, str]:
    kind, client = admin
    resp = client.post("/deployments", json={"uri": uri, **extra})
    assert resp.status_code == (500 if kind == "official" else 400), resp.text
    body = resp.json()
    return body["message"], body["restate_code"]


@pytest.mark.parametrize("use_http_11", [False, True])
def test_nothing_listening(admin: tuple[str, httpx.Client], use_http_11: bool) -> None:
    with raw_deployment() as url:
        pass  # free again: nothing listens
    message, code = _failure(admin, url, use_http_11=use_http_11)
    assert f"error when calling '{url}/'" in message
    assert code == "META0003"


def test_http11_only_over_h2_hints_at_http11(admin: tuple[str, httpx.Client]) -> None:
    answer = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    with raw_deployment(answer=answer) as url:
        message, _ = _failure(admin, url)
    assert f"error when calling '{url}/'" in message
    assert "1.1" in message  # official: "consider discovery with --use-http1.1"


def test_garbage_over_http11(admin: tuple[str, httpx.Client]) -> None:
    with raw_deployment(answer=b"\x00\xffgarbage\r\n\r\n") as url:
        message, code = _failure(admin, url, use_http_11=True)
    assert f"error when calling '{url}/'" in message
    assert code == "META0003"
