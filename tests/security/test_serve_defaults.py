"""``perdure.serve`` listens on loopback unless told otherwise, and says loudly when it serves
another interface without identity keys (anyone reaching the port could run handlers)."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

import perdure
from perdure.sdk.serve import DEFAULT_HOST, is_loopback
from tests.security.open_services import greeter
from tests.support.processes import free_port

KEY = "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"


def _serve_briefly(host: str | None, **options: object) -> int:
    """Serve a fresh app for a moment; the status of GET /health through 127.0.0.1."""
    port = free_port()

    async def run() -> int:
        stop = asyncio.Event()
        kwargs: dict[str, object] = {"port": port, "shutdown": stop, **options}
        if host is not None:
            kwargs["host"] = host
        app = perdure.app([greeter])
        server = asyncio.create_task(perdure.serve_async(app, **kwargs))  # type: ignore[arg-type]
        try:
            async with httpx.AsyncClient() as http:
                for _ in range(200):
                    try:
                        return (await http.get(f"http://127.0.0.1:{port}/health")).status_code
                    except httpx.ConnectError:
                        await asyncio.sleep(0.02)
            return 0
        finally:
            stop.set()
            await server

    return asyncio.run(run())


def test_loopback_is_the_default() -> None:
    assert DEFAULT_HOST == "127.0.0.1"
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.0.0.5")


def test_no_warning_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="perdure.serve"):
        assert _serve_briefly(None) == 200
    assert not [r for r in caplog.records if r.name == "perdure.serve"]


def test_a_warning_when_serving_every_interface_without_identity_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="perdure.serve"):
        assert _serve_briefly("0.0.0.0") == 200
    (warning,) = [r for r in caplog.records if r.name == "perdure.serve"]
    assert "WITHOUT request identity keys" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="perdure.serve"):
        # With keys, an unsigned health check still answers; nothing is logged.
        assert _serve_briefly("0.0.0.0", identity_keys=[KEY]) == 200
    assert not [r for r in caplog.records if r.name == "perdure.serve"]
