"""``perdure dev``: the server and the user's services in one process, reloaded when files change.

The services are mounted in-process (``Runtime.mount``, deployment ``local://NAME``): no HTTP hop
between the engine and the handlers. On an edit of any of the user's files, the target is imported
fresh and mounted again under the same deployment; invocations with a live attempt start over on
the new code by replaying their journal (steps already journaled are not executed again), and
suspended ones pick it up when they resume. A load that fails keeps the last good code serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import signal
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from perdure.dev.curls import KEY_PLACEHOLDER, curl_lines
from perdure.dev.loader import AppSpec, Loaded, Loader, LoadError
from perdure.dev.watcher import Watcher
from perdure.protocol import InvocationId
from perdure.sdk.endpoint import App
from perdure.server.app import Protection, listeners, open_runtime, serve_http, shutdown
from perdure.server.bind import split_bind
from perdure.server.partitions import PartitionCountMismatch
from perdure.server.records import Status
from perdure.server.runtime import RegistrationError, Runtime

log = logging.getLogger("perdure.dev")
SETTLE = 0.05
"""After a change is seen, how long to wait for the editor to finish writing before importing."""


@dataclass(frozen=True, slots=True)
class DevConfig:
    target: str
    """``path/to/app.py``, ``package.module``, either with ``:NAME``."""
    data_dir: Path = field(default_factory=lambda: Path(".perdure"))
    """Where the SQLite store lives (created if missing)."""
    store: str | None = None
    """A PostgreSQL URL: durable state lives there, the data directory holds a working copy."""
    ingress_bind: str = "127.0.0.1:8080"
    admin_bind: str = "127.0.0.1:9070"
    inactivity_timeout: int | None = None
    """Milliseconds before an idle attempt is made to suspend (None: the default, 1 minute)."""
    poll_interval: float = 0.25
    """Seconds between two looks at the user's files."""
    shutdown_timeout: float = 10.0
    """How long a graceful stop waits for live attempts to reach a safe point."""
    ui: bool = True
    """Serve the web UI on the admin port at ``/ui``."""
    protection: Protection = field(default_factory=Protection)
    """Tokens, allowed hosts and the request identity key, as ``perdure server`` takes them."""
    partitions: int | None = None
    """The partition count of a new store (None: 16); an existing store keeps its own."""


class DevError(Exception):
    """``perdure dev`` cannot start; the message says why and what to change."""


async def run(config: DevConfig, out: TextIO, stop: asyncio.Event | None = None) -> int:
    """Serve until ``stop`` is set (SIGTERM/SIGINT when not given); the process exit code."""
    loop = asyncio.get_running_loop()
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        session = DevSession.prepare(config, out)
    except (DevError, LoadError) as exc:
        print(f"perdure dev: {exc}", file=out, flush=True)
        return 1
    return await session.serve(stop)


class DevSession:
    def __init__(self, config: DevConfig, out: TextIO, loader: Loader, loaded: Loaded) -> None:
        self.config = config
        self.out = out
        self.loader = loader
        self.app: App = loaded.app
        self.watcher = Watcher(loaded.files)
        self.name = loader.spec.name
        self.deployment_id = ""
        self.ingress_url = _url(config.ingress_bind)
        self.admin_url = _url(config.admin_bind)
        self.runtime: Runtime | None = None

    @classmethod
    def prepare(cls, config: DevConfig, out: TextIO) -> DevSession:
        """Load the app and check the addresses: every mistake is reported before serving."""
        loader = Loader(AppSpec.parse(config.target))
        loaded = loader.load()
        for bind, flag in ((config.ingress_bind, "--ingress-bind"),
                           (config.admin_bind, "--admin-bind")):  # fmt: skip
            _check_bind(bind, flag)
        return cls(config, out, loader, loaded)

    # -- serving ---------------------------------------------------------------------------------

    async def serve(self, stop: asyncio.Event) -> int:
        config = self.config
        from perdure.server.storage.postgres import StoreUnavailable  # noqa: PLC0415

        try:
            runtime = open_runtime(
                config.data_dir,
                store=config.store,
                inactivity_timeout=config.inactivity_timeout,
                ingress_url=self.ingress_url,
                identity=config.protection.identity_key,
                partitions=config.partitions,
            )
        except (StoreUnavailable, PartitionCountMismatch) as exc:
            self.say(f"perdure dev: {exc}")
            return 1
        self.runtime = runtime
        try:
            self.deployment_id = await runtime.mount(self.name, self.app)
        except RegistrationError as exc:
            self.say(f"perdure dev: {exc}")
            await runtime.stop(0)
            return 1
        runtime.start()  # after mounting: recovered invocations find their code in place
        loop = asyncio.get_running_loop()
        stop_accepting = asyncio.Event()
        guarded = listeners(
            runtime, config.ingress_bind, config.admin_bind, config.protection, ui=config.ui
        )
        tasks = {
            loop.create_task(serve_http(app, bind, name, stop_accepting)): (bind, f"--{name}-bind")
            for app, bind, name in guarded
        }
        await _listening([config.ingress_bind, config.admin_bind], tasks)
        self._banner()
        watching = loop.create_task(self._watch())
        stopped = loop.create_task(stop.wait())
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        code = 0
        for task, (bind, flag) in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is not None:
                self.say(f"perdure dev: cannot listen on {bind}: {task.exception()}; "
                         f"pass {flag} HOST:PORT to use another address")  # fmt: skip
                code = 1
        self.say("perdure dev: stopping (running invocations reach a safe point first)")
        watching.cancel()
        await shutdown(runtime, tasks, stop_accepting, config.shutdown_timeout)
        stopped.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        self.say("perdure dev: stopped")
        return code

    def _banner(self) -> None:
        services = ", ".join(self.app.services) or "no services"
        self.say(f"perdure dev: serving {self.loader.spec} as local://{self.name} ({services})")
        self.say(f"  ingress  {self.ingress_url}")
        self.say(f"  admin    {self.admin_url}")
        if self.config.ui:
            self.say(f"  ui       {self.admin_url}/ui")
        self.say(f"  data     {self.config.data_dir.resolve()}")
        self._print_curls()
        count = len(self.watcher.files)
        self.say(f"Watching {count} file{'s' if count != 1 else ''} for changes; Ctrl-C stops.")

    def _print_curls(self) -> None:
        lines = curl_lines(self.app, self.ingress_url)
        if not lines:
            self.say("No handler is reachable through the ingress (all are ingress-private).")
            return
        self.say(f"Call the handlers ({KEY_PLACEHOLDER} is any object or workflow key):")
        for line in lines:
            self.say(f"  {line}")

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- reloading -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.config.poll_interval)
            changed = self.watcher.changed()
            if not changed:
                continue
            await asyncio.sleep(SETTLE)
            changed = sorted({*changed, *self.watcher.changed()})
            try:
                await self.reload(changed)
            except Exception:  # a bug of ours must not end the session
                log.exception("reloading failed")

    async def reload(self, changed: list[Path]) -> None:
        """Import the target fresh, mount it in place of the old code, restart live attempts."""
        runtime = self.runtime
        assert runtime is not None
        self.say(f"\nperdure dev: {', '.join(_show(p) for p in changed)} changed; reloading")
        try:
            loaded = self.loader.load()
        except LoadError as exc:
            self.watcher.watch(exc.files | self.watcher.files)
            self.say(exc.message)
            self.say("perdure dev: still serving the last good code; fix the error and save the "
                     "file to reload")  # fmt: skip
            return
        self.watcher.watch(loaded.files)
        try:
            await runtime.mount(self.name, loaded.app)
        except RegistrationError as exc:
            self.say(f"perdure dev: {exc}")
            self.say("perdure dev: still serving the last good code; fix the error and save the "
                     "file to reload")  # fmt: skip
            await runtime.mount(self.name, self.app)
            return
        old_curls = curl_lines(self.app, self.ingress_url)
        self.app = loaded.app
        restarted = self._restart_invocations(runtime)
        note = ""
        if restarted:
            plural = "s start" if len(restarted) != 1 else " starts"
            note = f"; {len(restarted)} running invocation{plural} over on the new code"
        self.say(f"perdure dev: reloaded {self.loader.spec}{note}")
        if curl_lines(self.app, self.ingress_url) != old_curls:
            self._print_curls()

    def _restart_invocations(self, runtime: Runtime) -> list[InvocationId]:
        """Live attempts against our deployment, and invocations of our services backing off
        after a failure (the fix may be what they wait for)."""
        ids = runtime.invoker.live(self.deployment_id)
        for inv in runtime.engine.invocations_with_status(Status.BACKING_OFF):
            ours = inv.deployment_id == self.deployment_id or (
                inv.deployment_id is None and inv.service in self.app.services
            )
            if ours and inv.id not in ids:
                ids.append(inv.id)
        runtime.invoker.restart(ids)
        return ids


async def _listening(binds: list[str], listeners: Iterable[asyncio.Task[None]]) -> None:
    """Wait (a bounded time) until every address accepts connections, so that the banner's
    URLs work when it is printed; a listener that failed ends the wait."""
    deadline = asyncio.get_running_loop().time() + 10.0
    for bind in binds:
        host, _, port = _url(bind).removeprefix("http://").rpartition(":")
        while asyncio.get_running_loop().time() < deadline:
            if any(task.done() for task in listeners):
                return
            try:
                _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            break


def _url(bind: str) -> str:
    host, _, port = bind.rpartition(":")
    if host in ("0.0.0.0", "", "::", "[::]"):
        host = "127.0.0.1"
    return f"http://{host}:{port}"


def _check_bind(bind: str, flag: str) -> None:
    split = split_bind(bind)
    if split is None:
        raise DevError(f"bad address {bind!r} for {flag}, expected HOST:PORT")
    host, port = split
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        # Like the listeners: a port held only by TIME_WAIT connections is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            in_use = exc.errno == errno.EADDRINUSE
            reason = "is in use" if in_use else f"cannot be used ({exc.strerror})"
            raise DevError(
                f"{bind} {reason}; stop what listens there or pass {flag} HOST:PORT"
            ) from None


def _show(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
