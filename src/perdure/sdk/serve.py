"""Serving an endpoint: hypercorn with HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one
port, stopped cleanly by SIGTERM or SIGINT (stop accepting, let in-flight attempts finish for up
to ``grace_period``, then cut them; the server retries a cut attempt)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from perdure.sdk.endpoint import App


async def serve_async(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    shutdown: asyncio.Event | None = None,
) -> None:
    """Serve until ``shutdown`` is set or the process gets SIGTERM/SIGINT."""
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = grace_period.total_seconds()
    config.keep_alive_timeout = 75.0
    config.accesslog = None
    stop = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass
    try:
        asgi: Any = app
        await hypercorn_serve(asgi, config, shutdown_trigger=stop.wait)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def serve(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
) -> None:
    """Serve ``app`` on ``host:port`` (h2c and HTTP/1.1) until SIGTERM/SIGINT, then return."""
    asyncio.run(serve_async(app, host=host, port=port, grace_period=grace_period))


__all__ = ["serve", "serve_async"]
