"""Serving an endpoint: HTTP/2 cleartext (prior knowledge) and HTTP/1.1 on one port (the server
in ``perdure.http_server``), stopped cleanly by SIGTERM or SIGINT (stop accepting, let in-flight
attempts finish for up to ``grace_period``, then cut them; the server retries a cut attempt).

A connection is not ended after a number of requests (hypercorn's default is 1000) unless
``max_requests`` asks for it; then it ends with a graceful GOAWAY (see ``perdure.http_server``).

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

from perdure.gc_tuning import tune_gc
from perdure.http_server import serve_asgi
from perdure.sdk.endpoint import App

CUT_MARGIN = 5.0
"""Seconds between the app cutting its handlers (each attempt ends with a retryable error) and
the HTTP server cancelling what is left."""
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
    max_requests: int | None = None,
) -> None:
    """Serve until ``shutdown`` is set or the process gets SIGTERM/SIGINT.

    ``host``: 127.0.0.1 by default (this machine only); ``"0.0.0.0"`` serves every interface.
    ``identity_keys``: added to the app's (see ``perdure.App``): requests must be signed.
    ``max_requests``: end an HTTP/2 connection (gracefully) after that many requests; by default
    never.
    """
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, not {max_requests}")
    _secure(app, host, identity_keys)
    stop = shutdown or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            pass

    serving = asyncio.Event()  # set once the app was told to stop: the server stops then
    cutting: list[asyncio.TimerHandle] = []

    async def stopping() -> None:
        await stop.wait()
        if isinstance(app, App):
            app.end_inputs()  # handlers waiting for the server suspend now
            cutting.append(loop.call_later(grace_period.total_seconds(), app.cut_handlers))
        serving.set()

    watcher = loop.create_task(stopping())
    try:
        # The grace period plus a margin: the app cuts its handlers itself when it ends.
        await serve_asgi(
            app, host, port, serving,
            grace_period=grace_period.total_seconds() + CUT_MARGIN, max_requests=max_requests,
        )  # fmt: skip
    finally:
        watcher.cancel()
        for handle in cutting:
            handle.cancel()
        for signum in installed:
            loop.remove_signal_handler(signum)


def serve(
    app: App,
    *,
    host: str = DEFAULT_HOST,
    port: int = 9080,
    grace_period: timedelta = timedelta(seconds=30),
    identity_keys: Iterable[str] | None = None,
    max_requests: int | None = None,
) -> None:
    """Serve ``app`` on ``host:port`` (h2c and HTTP/1.1) until SIGTERM/SIGINT, then return.
    ``host``, ``identity_keys`` and ``max_requests``: see ``serve_async``."""
    tune_gc()  # the process is a server from here on
    asyncio.run(
        serve_async(
            app,
            host=host,
            port=port,
            grace_period=grace_period,
            identity_keys=identity_keys,
            max_requests=max_requests,
        )
    )


__all__ = ["serve", "serve_async"]
