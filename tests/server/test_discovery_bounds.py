"""Discovery is bounded: a deployment that drips, hangs or floods cannot hold a registration (or
the server's memory) for longer than the deadline. In process, against fake deployments on real
sockets, with short limits so that the test is quick; test_hostile_input.py checks the default
limits through a server process."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from perdure.server.invoker.discovery import DiscoveryError, discover
from perdure.server.invoker.h2 import H2Pool
from tests.support.raw_deployment import http11_answer, raw_deployment

MANIFEST = json.dumps(
    {"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": 5, "maxProtocolVersion": 6,
     "services": []}
).encode()  # fmt: skip
MANIFEST_TYPE = "application/vnd.restate.endpointmanifest.v3+json"


async def _discover(url: str, *, use_http_11: bool, **limits: float) -> tuple[float, str]:
    """Seconds until discovery of ``url`` failed (it must fail), and the error message."""
    pool = H2Pool()
    started = time.monotonic()
    try:
        async with httpx.AsyncClient() as http11:
            with pytest.raises(DiscoveryError) as caught:
                await discover(
                    url,
                    use_http_11=use_http_11,
                    additional_headers={},
                    pool=pool,
                    http11=http11,
                    **limits,
                )  # type: ignore[arg-type]
    finally:
        pool.close()
    assert caught.value.status == 400
    return time.monotonic() - started, caught.value.message


@pytest.mark.asyncio
async def test_a_dripping_deployment_is_cut_off_at_the_deadline() -> None:
    answer = http11_answer(MANIFEST, MANIFEST_TYPE)  # one byte every 0.2 s: ~40 s in full
    with raw_deployment(answer=answer, drip_interval=0.2) as url:
        took, text = await _discover(url, use_http_11=True, deadline=2.0)
    assert 1.9 < took < 10.0
    assert "no complete answer to discovery within 2 s" in text


@pytest.mark.parametrize("use_http_11", [False, True])
@pytest.mark.asyncio
async def test_a_silent_deployment_is_cut_off_at_the_deadline(use_http_11: bool) -> None:
    with raw_deployment(hang=True) as url:
        took, text = await _discover(url, use_http_11=use_http_11, deadline=1.5)
    assert 1.4 < took < 10.0
    assert f"error when calling '{url}'" in text


@pytest.mark.asyncio
async def test_the_manifest_size_limit_applies_while_reading() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + MANIFEST_TYPE.encode() + b"\r\n\r\n"
    with raw_deployment(answer=head, flood_bytes=1 << 20) as url:
        _, text = await _discover(url, use_http_11=True, max_manifest_bytes=1000)
    assert "larger than 1000 bytes" in text


@pytest.mark.asyncio
async def test_a_manifest_within_the_limits_is_read() -> None:
    pool = H2Pool()
    with raw_deployment(answer=http11_answer(MANIFEST, MANIFEST_TYPE)) as url:
        async with httpx.AsyncClient() as http11:
            found = await discover(url, use_http_11=True, additional_headers={}, pool=pool,
                                   http11=http11, deadline=5.0,
                                   max_manifest_bytes=len(MANIFEST))  # fmt: skip
    pool.close()
    assert found.manifest.services == ()
