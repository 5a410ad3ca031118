"""Serving an endpoint: hypercorn with HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one
port, stopped cleanly by SIGTERM or SIGINT (stop accepting, let in-flight attempts finish for up
to ``grace_period``, then cut them; the server retries a cut attempt).

A connection is not ended after a number of requests (hypercorn's default is 1000) unless
``max_requests`` asks for it; then it ends with a graceful GOAWAY (see ``drain``)."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from typing import Any

import hypercorn.protocol
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from perdure.sdk.drain import DrainingH2Protocol
from perdure.sdk.endpoint import App

NO_REQUEST_LIMIT = 2**62


async def serve_async(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    shutdown: asyncio.Event | None = None,
    max_requests: int | None = None,
) -> None:
    """Serve until ``shutdown`` is set or the process gets SIGTERM/SIGINT. ``max_requests``:
    end an HTTP/2 connection (gracefully) after that many requests; by default never."""
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, not {max_requests}")
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = grace_period.total_seconds()
    config.keep_alive_timeout = 75.0
    config.keep_alive_max_requests = NO_REQUEST_LIMIT if max_requests is None else max_requests
    config.accesslog = None
    # hypercorn looks its HTTP/2 protocol up here for each new connection.
    setattr(hypercorn.protocol, "H2Protocol", DrainingH2Protocol)  # noqa: B010
    stop = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    async def stopping() -> None:
        await stop.wait()
        if isinstance(app, App):
            app.end_inputs()  # handlers waiting for the server suspend now

    try:
        asgi: Any = app
        await hypercorn_serve(asgi, config, shutdown_trigger=stopping)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def serve(
    app: App,
    *,
    host: str = "0.0.0.0",
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    max_requests: int | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (h2c and HTTP/1.1) until SIGTERM/SIGINT, then return.
    ``max_requests``: end an HTTP/2 connection (gracefully) after that many requests."""
    asyncio.run(
        serve_async(app, host=host, port=port, grace_period=grace_period, max_requests=max_requests)
    )


__all__ = ["serve", "serve_async"]
