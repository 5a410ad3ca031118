"""``perdure server``: storage, registry, engine, invoker, ingress and admin wired together.

SIGTERM (or SIGINT) stops gracefully: the HTTP servers stop accepting, live attempts are
half-closed so that their SDKs reach a safe point (suspend), pending writes are committed, and the
process exits. Nothing acknowledged is lost on SIGKILL either: every acknowledgement waits for the
group commit that made it durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config

from perdure.server.registry import Defaults
from perdure.server.runtime import Runtime
from perdure.server.ui import with_ui

log = logging.getLogger("perdure.server")
DB_FILE = "perdure.sqlite3"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path = field(default_factory=lambda: Path(".perdure"))
    """Where the SQLite store lives (created if missing)."""
    ingress_bind: str = "127.0.0.1:8080"
    admin_bind: str = "127.0.0.1:9070"
    synchronous: str = "FULL"
    """SQLite ``synchronous`` pragma: FULL fsyncs every group commit."""
    shutdown_timeout: float = 10.0
    """How long a graceful stop waits for live attempts to reach a safe point."""
    inactivity_timeout: int | None = None
    """Milliseconds an attempt may wait for the deployment before its input is closed so that
    the SDK suspends (None: the official default, 1 minute; 0: suspend at every await, which
    replays handlers constantly and flushes out determinism bugs). Handler and service options
    still take precedence."""
    ui: bool = True
    """Serve the web UI on the admin port at ``/ui`` (``--no-ui`` turns it off)."""


def _hypercorn(bind: str, name: str) -> Config:
    config = Config()
    config.bind = [bind]
    config.accesslog = None
    config.errorlog = logging.getLogger(f"perdure.server.{name}.http")
    config.include_server_header = False
    config.graceful_timeout = 2.0
    config.keep_alive_timeout = 75.0
    return config


async def serve_http(app: Any, bind: str, name: str, stop: asyncio.Event) -> None:
    """Serve one ASGI app on ``bind`` until ``stop`` is set."""
    await hypercorn_serve(app, _hypercorn(bind, name), shutdown_trigger=stop.wait)


def open_runtime(
    data_dir: Path, *, inactivity_timeout: int | None, ingress_url: str, synchronous: str = "FULL"
) -> Runtime:
    """The Runtime on the store in ``data_dir`` (created if missing), as server and dev run it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    defaults = Defaults()
    if inactivity_timeout is not None:
        defaults = dataclasses.replace(defaults, inactivity_timeout=inactivity_timeout)
    return Runtime(
        data_dir / DB_FILE, defaults=defaults, ingress_url=ingress_url, synchronous=synchronous
    )


async def shutdown(
    runtime: Runtime,
    listeners: Iterable[asyncio.Task[None]],
    stop_accepting: asyncio.Event,
    timeout: float,
) -> None:
    """The graceful stop: no new requests, live attempts reach a safe point, all committed."""
    stop_accepting.set()
    await runtime.invoker.drain(timeout)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*listeners, return_exceptions=True), 5.0)
    await runtime.stop(0)


async def serve(config: ServerConfig, stop: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrive when ``stop`` is not given)."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    runtime = open_runtime(
        config.data_dir,
        inactivity_timeout=config.inactivity_timeout,
        ingress_url=f"http://{config.ingress_bind}",
        synchronous=config.synchronous,
    )
    stop_accepting = asyncio.Event()
    servers = [
        loop.create_task(serve_http(app, bind, name, stop_accepting))
        for app, bind, name in (
            (runtime.ingress, config.ingress_bind, "ingress"),
            (with_ui(runtime.admin, config.ui), config.admin_bind, "admin"),
        )
    ]
    runtime.start()
    log.info(
        "perdure server listening: ingress http://%s, admin http://%s, data %s",
        config.ingress_bind,
        config.admin_bind,
        config.data_dir.resolve(),
    )
    if config.ui:
        log.info("web UI: http://%s/ui", config.admin_bind)
    stopped = loop.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *servers], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopped and task.exception() is not None:
            log.error("an HTTP server failed: %s", task.exception())
    log.info("stopping: no new requests; letting running attempts reach a safe point")
    await shutdown(runtime, servers, stop_accepting, config.shutdown_timeout)
    stopped.cancel()
    log.info("stopped")
