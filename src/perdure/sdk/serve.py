"""Serving an endpoint: HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one port (the server
in ``http_server``), stopped cleanly by SIGTERM or SIGINT (stop accepting, let in-flight attempts
finish for up to ``grace_period``, then cut them; the server retries a cut attempt)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta

from perdure.http_server import serve_asgi
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
        await serve_asgi(app, host, port, stop, grace_period=grace_period.total_seconds())
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
