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
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perdure.http_server import serve_asgi
from perdure.protocol.identity import SigningKey
from perdure.server.api.access import Access, Guarded
from perdure.server.registry import Defaults
from perdure.server.runtime import Runtime
from perdure.server.storage.postgres.url import redact
from perdure.server.storage.private import private_dir
from perdure.server.ui import with_ui

if TYPE_CHECKING:
    from perdure.server.routing.worker import WorkerSpec

log = logging.getLogger("perdure.server")
DB_FILE = "perdure.sqlite3"
WORKING_COPY_FILE = "perdure-working-copy.sqlite3"
"""With ``--store postgresql://...``: the node-local working copy, rebuilt at every start."""


@dataclass(frozen=True, slots=True)
class Protection:
    """What guards a server's listeners and signs its requests (see docs/security.md)."""

    admin_token: str | None = None
    """The bearer token of the admin API (None: none needed)."""
    ingress_token: str | None = None
    """The bearer token of the ingress (None: none needed)."""
    allowed_hosts: tuple[str, ...] = ()
    """Names clients may use in ``Host`` besides localhost, IP addresses and the bound host
    (``*``: any; see ``api.access``)."""
    identity_key: SigningKey | None = None
    """Signs every request to a deployment (request identity v1); None: unsigned."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: Path = field(default_factory=lambda: Path(".perdure"))
    """Where the SQLite store lives (created if missing)."""
    store: str | None = None
    """A PostgreSQL URL (``--store``): durable state lives there, and the data directory holds
    only the node's working copy. None: SQLite in the data directory."""
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
    protection: Protection = field(default_factory=Protection)
    partitions: int | None = None
    """The partition count of a new store (None: 16); an existing store keeps its own, and a
    different count is refused at startup (``PartitionCountMismatch``)."""
    workers: int = 1
    """Worker processes (``--workers``): 1 runs everything in this process; N > 1 runs a
    supervisor and N workers, worker i owning the partitions p % N == i (see
    ``perdure.server.routing``)."""


async def serve_http(
    app: Any, bind: str, name: str, stop: asyncio.Event, sock: socket.socket | None = None
) -> None:
    """Serve one ASGI app on ``bind`` (HOST:PORT), or on the listening socket ``sock`` bound
    to it, until ``stop`` is set."""
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"bad {name} address {bind!r}, expected HOST:PORT")
    await serve_asgi(app, host.strip("[]"), int(port), stop, grace_period=2.0, sock=sock)


def listeners(
    runtime: Runtime, ingress_bind: str, admin_bind: str, protection: Protection, *, ui: bool = True
) -> list[tuple[Any, str, str]]:
    """The ingress and the admin API (with the web UI unless ``ui`` is false) behind their access
    checks: ``(app, bind, name)``."""
    hosts = protection.allowed_hosts
    ingress = Access(ingress_bind, protection.ingress_token, hosts,
                     token_hint="perdure.client: token= or $PERDURE_INGRESS_TOKEN")  # fmt: skip
    admin = Access(admin_bind, protection.admin_token, hosts, json_writes=True,
                   token_hint="the CLI: --token or $PERDURE_ADMIN_TOKEN")  # fmt: skip
    return [
        (Guarded(runtime.ingress, ingress), ingress_bind, "ingress"),
        (Guarded(with_ui(runtime.admin, runtime.ingress, ui), admin), admin_bind, "admin"),
    ]


def _own_listeners(
    runtime: Runtime, worker: WorkerSpec, protection: Protection, *, ui: bool
) -> list[tuple[Any, str, str, str]]:
    """A worker's own ingress and admin listeners (loopback, where its peers reach it):
    ``(app, bind, name, fd name)``."""
    me = worker.peers[worker.index]
    ingress_bind = me.ingress_url.removeprefix("http://")
    admin_bind = me.admin_url.removeprefix("http://")
    return [
        (app, bind, name, f"own_{name}")
        for app, bind, name in listeners(runtime, ingress_bind, admin_bind, protection, ui=ui)
    ]


def open_runtime(
    data_dir: Path,
    *,
    inactivity_timeout: int | None,
    ingress_url: str,
    synchronous: str = "FULL",
    identity: SigningKey | None = None,
    store: str | None = None,
    partitions: int | None = None,
    owned: Iterable[int] | None = None,
) -> Runtime:
    """The Runtime on the store in ``data_dir`` (created 0700 if missing), or on PostgreSQL at
    ``store`` with its working copy in ``data_dir``, as server and dev run it. ``owned``: the
    partitions it runs (None: all)."""
    private_dir(data_dir)
    defaults = Defaults()
    if inactivity_timeout is not None:
        defaults = dataclasses.replace(defaults, inactivity_timeout=inactivity_timeout)
    if store is not None and (data_dir / DB_FILE).exists():
        log.warning("%s holds a SQLite store that --store does not use: its invocations, state "
                    "and deployments are not in PostgreSQL", data_dir / DB_FILE)  # fmt: skip
    return Runtime(
        data_dir / (DB_FILE if store is None else WORKING_COPY_FILE),
        store_url=store,
        defaults=defaults,
        ingress_url=ingress_url,
        synchronous=synchronous,
        identity=identity,
        partitions=partitions,
        owned=owned,
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


async def serve(
    config: ServerConfig, stop: asyncio.Event | None = None, *, worker: WorkerSpec | None = None
) -> None:
    """Run until ``stop`` is set (or SIGTERM/SIGINT arrive when ``stop`` is not given).
    ``worker``: run as one worker of ``--workers N`` (started by the supervisor)."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    runtime = open_runtime(
        config.data_dir if worker is None else worker.data_dir(config.data_dir),
        inactivity_timeout=config.inactivity_timeout,
        ingress_url=f"http://{config.ingress_bind}",
        synchronous=config.synchronous,
        identity=config.protection.identity_key,
        store=config.store,
        partitions=config.partitions if worker is None else worker.partition_count,
        owned=None if worker is None else worker.owned,
    )
    stop_accepting = asyncio.Event()
    apps = listeners(
        runtime, config.ingress_bind, config.admin_bind, config.protection, ui=config.ui
    )
    routing = None
    if worker is None:
        servers = [
            loop.create_task(serve_http(app, bind, name, stop_accepting))
            for app, bind, name in apps
        ]
        runtime.start()
    else:
        from perdure.server.routing.worker import WorkerRouting  # noqa: PLC0415

        stores = worker.store_paths(config.data_dir, DB_FILE)
        routing = WorkerRouting.wire(runtime, worker, stores, config.protection.admin_token)
        runtime.start()
        await routing.start()  # the registry as worker 0 has it, before serving
        servers = [
            loop.create_task(serve_http(app, bind, name, stop_accepting, worker.socket(name)))
            for app, bind, name in apps
        ]
        own = _own_listeners(runtime, worker, config.protection, ui=config.ui)
        servers += [
            loop.create_task(serve_http(app, bind, name, stop_accepting, worker.socket(fd)))
            for app, bind, name, fd in own
        ]
    if config.protection.identity_key is not None:
        log.info("signing requests to deployments; their identity_keys must include %s",
                 config.protection.identity_key.kid)  # fmt: skip
    log.info(
        "perdure server listening: ingress http://%s, admin http://%s, data %s",
        config.ingress_bind,
        config.admin_bind,
        config.data_dir.resolve(),
    )
    if config.store is not None:
        log.info("durable state in PostgreSQL: %s (the data directory holds a working copy)",
                 redact(config.store))  # fmt: skip
    if config.ui:
        log.info("web UI: http://%s/ui", config.admin_bind)
    stopped = loop.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *servers], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopped and task.exception() is not None:
            log.error("an HTTP server failed: %s", task.exception())
    log.info("stopping: no new requests; letting running attempts reach a safe point")
    await shutdown(runtime, servers, stop_accepting, config.shutdown_timeout)
    if routing is not None:
        await routing.stop()
    stopped.cancel()
    log.info("stopped")
