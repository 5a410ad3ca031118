"""Serving an endpoint: hypercorn with HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one
port, stopped cleanly by SIGTERM or SIGINT (stop accepting, let in-flight attempts finish for up
to ``grace_period``, then cut them; the server retries a cut attempt).

A deployment runs whatever a request asks, so it listens on the loopback interface unless told
otherwise. Serving another interface without identity keys (anyone who reaches the port can run
handlers and make up object state) is logged as a warning at start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from perdure.sdk.endpoint import App

DEFAULT_HOST = "127.0.0.1"

log = logging.getLogger("perdure.serve")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) is reachable from this machine only."""
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secure(app: App, host: str, identity_keys: Iterable[str] | None) -> None:
    if identity_keys is not None:
        keys = list(identity_keys)
        if app.verifier is not None:
            keys += list(app.verifier.keys)
        if keys:
            from perdure.protocol.identity import Verifier  # noqa: PLC0415

            app.verifier = Verifier.of(dict.fromkeys(keys))
    if app.verifier is None and not is_loopback(host):
        log.warning(
            "perdure.serve: listening on %s WITHOUT request identity keys: anyone who can reach "
            "this port can run your handlers and make up their state. Pass identity_keys="
            '["publickeyv1_..."] (the public key of the server\'s '
            "--request-identity-private-key-pem-file), or keep the port on a private network. "
            "See docs/security.md.",
            host,
        )


async def serve_async(
    app: App,
    *,
    host: str = DEFAULT_HOST,
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    shutdown: asyncio.Event | None = None,
    identity_keys: Iterable[str] | None = None,
) -> None:
    """Serve until ``shutdown`` is set or the process gets SIGTERM/SIGINT.

    ``host``: 127.0.0.1 by default (this machine only); ``"0.0.0.0"`` serves every interface.
    ``identity_keys``: added to the app's (see ``perdure.App``): requests must be signed.
    """
    _secure(app, host, identity_keys)
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
    host: str = DEFAULT_HOST,
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    identity_keys: Iterable[str] | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (h2c and HTTP/1.1) until SIGTERM/SIGINT, then return.
    ``host`` and ``identity_keys``: see ``serve_async``."""
    asyncio.run(
        serve_async(
            app, host=host, port=port, grace_period=grace_period, identity_keys=identity_keys
        )
    )


__all__ = ["serve", "serve_async"]
