"""The ASGI endpoint a Restate server invokes: discovery, invocation attempts, health.

``GET …/discover`` answers the manifest (v2..v4 by ``Accept``; BIDI_STREAM when asked over
HTTP/2, REQUEST_RESPONSE over HTTP/1.1). ``POST …/invoke/{service}/{handler}`` runs one attempt:
request body bytes feed the VM while the handler runs, and output is streamed as it is produced.
The response head goes out with the first output (one write, not two), or ``HEAD_DELAY`` after
the start if the handler has none by then (the server's timers start at the head). After the
terminal message the request is read to its end before the response ends (the server
half-closes it once it saw End/Suspension/Error).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

from perdure.protocol.manifest import Manifest, ProtocolMode
from perdure.protocol.versions import (
    PROTOCOL_VERSION,
    invocation_content_type,
    manifest_content_type,
    negotiate_manifest_version,
    parse_invocation_content_type,
)
from perdure.sdk.context import context_for
from perdure.sdk.deadlines import Deadlines
from perdure.sdk.definitions import HandlerDef, ServiceDefinition
from perdure.sdk.errors import VMError
from perdure.sdk.invocation import Invocation, wall_clock_ms
from perdure.sdk.vm import VM

if TYPE_CHECKING:
    from perdure.protocol.identity import Verifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SERVER_HEADER = b"perdure/0.1"
HEAD_DELAY = 0.01
"""Seconds the response head may wait for the handler's first output, to leave with it."""
IN_PROCESS = "perdure.in_process"
"""The scope extension of requests from a server in this process (see server.invoker.local)."""
DRAIN_TIMEOUT = 30.0
"""How long to wait for the server to close the request after our terminal message."""

log = logging.getLogger("perdure.endpoint")


class App:
    """An ASGI application serving a set of services, objects and workflows.

    ``clock`` (milliseconds since the epoch) dates sleeps and delayed sends; real time unless
    given (``perdure.testing`` passes its virtual clock).

    ``identity_keys`` (``publickeyv1_…``, the public halves of the servers' request identity
    keys): when given, every request but ``/health`` must be signed by one of them, else it is
    answered 401 and runs nothing (discovery included), as Restate's SDKs do.
    """

    def __init__(
        self,
        services: Iterable[ServiceDefinition],
        *,
        clock: Callable[[], int] | None = None,
        identity_keys: Iterable[str] | None = None,
    ) -> None:
        self.services: dict[str, ServiceDefinition] = {}
        for service in services:
            if service.name in self.services:
                raise ValueError(f"two services are named {service.name!r}")
            self.services[service.name] = service
        self.clock = clock or wall_clock_ms
        self.inflight: set[asyncio.Task[Any]] = set()
        self._heads = Deadlines(HEAD_DELAY)
        self._drains = Deadlines(DRAIN_TIMEOUT, period=1.0)
        self.live: dict[str, Invocation] = {}
        """The attempts running in this app, by invocation id (``inv_1…``)."""
        self._attempts: set[_Attempt] = set()
        self.verifier: Verifier | None = None
        keys = list(identity_keys or ())
        if keys:  # imported only when used: cryptography is a heavy import
            from perdure.protocol.identity import Verifier  # noqa: PLC0415

            self.verifier = Verifier.of(keys)

    def end_inputs(self) -> None:
        """Stopping: treat every open request body as ended, so each handler waiting for a
        completion suspends now (the server resumes it elsewhere) instead of holding its stream,
        and its connection, until the grace period runs out."""
        for attempt in list(self._attempts):
            attempt.end_input()

    def cut_handlers(self) -> None:
        """Stopping, and the grace period is over: cancel the handlers still running; each
        attempt ends with a retryable error (the server retries it, replaying its journal)
        rather than being torn down with its connection."""
        for attempt in list(self._attempts):
            attempt.cut()

    def manifest(self, mode: ProtocolMode) -> Manifest:
        return Manifest(
            protocol_mode=mode,
            min_protocol_version=PROTOCOL_VERSION,
            max_protocol_version=PROTOCOL_VERSION,
            services=tuple(s.manifest() for s in self.services.values()),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        parts = [p for p in scope["path"].split("/") if p]
        method = scope["method"]
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if (
            self.verifier is not None
            and not (method == "GET" and parts[-1:] == ["health"])
            # A server in this very process (perdure dev) has nothing to prove; no HTTP server
            # sets this extension, so a request from the network cannot claim it.
            and IN_PROCESS not in (scope.get("extensions") or {})
        ):
            refusal = _identity_refusal(self.verifier, scope["path"], headers)
            if refusal is not None:
                log.warning("refused %s %s: %s", method, scope["path"], refusal)
                await _respond(send, 401, f"request identity: {refusal}".encode())
                return
        if method == "GET" and parts[-1:] == ["discover"]:
            await self._discover(scope, headers, send)
        elif method == "GET" and parts[-1:] == ["health"]:
            await _respond(send, 200, b"", b"text/plain")
        elif method == "POST" and len(parts) >= 3 and parts[-3] == "invoke":
            handler = self._handler(parts[-2], parts[-1])
            if handler is None:
                await _respond(send, 404, f"no handler {parts[-2]}/{parts[-1]}".encode())
                return
            version = parse_invocation_content_type(headers.get("content-type"))
            if version != PROTOCOL_VERSION:
                message = f"unsupported protocol {headers.get('content-type')!r}; speaks v6"
                await _respond(send, 415, message.encode())
                return
            task = asyncio.current_task()
            assert task is not None  # an ASGI app runs in a task
            self.inflight.add(task)
            try:
                await _invoke(self, handler, receive, send, task)
            finally:
                self.inflight.discard(task)
        else:
            await _respond(send, 404, b"not found")

    def _handler(self, service: str, handler: str) -> HandlerDef | None:
        definition = self.services.get(service)
        return None if definition is None else definition.handlers.get(handler)

    async def _discover(self, scope: Scope, headers: dict[str, str], send: Send) -> None:
        accept = headers.get("accept")
        if accept is not None and "vnd.restate.endpointmanifest" not in accept:
            accept = None  # e.g. */* from a browser or curl: no preference
        version = negotiate_manifest_version(accept)
        if version is None:
            await _respond(send, 415, b"no supported manifest version (v2..v4) in accept")
            return
        http11 = scope.get("http_version", "1.1") in ("1.0", "1.1")
        mode = ProtocolMode.REQUEST_RESPONSE if http11 else ProtocolMode.BIDI_STREAM
        try:
            body = json.dumps(self.manifest(mode).to_json(version)).encode()
        except ValueError as exc:
            await _respond(send, 500, str(exc).encode())
            return
        await _respond(send, 200, body, manifest_content_type(version).encode())


def _identity_refusal(verifier: Verifier, path: str, headers: dict[str, str]) -> str | None:
    """Why the request's signature is not good enough (None: it is)."""
    from perdure.protocol.identity import IdentityError, protocol_path  # noqa: PLC0415

    try:
        verifier.verify(headers, protocol_path(path) or path, time.time())
    except IdentityError as exc:
        return str(exc)
    return None


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes = b"text/plain"
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", content_type), (b"x-restate-server", SERVER_HEADER)],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _invoke(
    app: App, handler: HandlerDef, receive: Receive, send: Send, task: asyncio.Task[Any]
) -> None:
    """One attempt (in ``task``): stream the VM's output while feeding it the request body."""
    attempt = _Attempt(app, handler, receive, send, task)
    try:
        await attempt.run()
    finally:
        await attempt.send_head()
    await send({"type": "http.response.body", "body": b"", "more_body": False})


_INVOKE_HEAD = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", invocation_content_type(PROTOCOL_VERSION).encode()),
        (b"x-restate-server", SERVER_HEADER),
    ],
}


class _Attempt:
    """Shuttles bytes between one HTTP exchange and one Invocation.

    The request body is read inline until the journal is complete (usually its first chunk),
    then by a task for the rest (notifications, the server's half-close) once the handler first
    waits for the server; a handler that never does (it answers from its input and journal)
    has the rest read inline after its end: no reader task at all.
    """

    def __init__(
        self, app: App, handler: HandlerDef, receive: Receive, send: Send, task: asyncio.Task[Any]
    ) -> None:
        self.app = app
        self.task = task
        self.loop = task.get_loop()  # asyncio.get_running_loop() is a getpid() call on 3.11
        self.vm = VM()
        self.inv = Invocation(self.vm, handler, clock=app.clock)
        self.receive, self.send = receive, send
        self.input_done = asyncio.Event()
        self.head_sent = False
        self._reader: asyncio.Task[bool] | None = None
        self._ending = False
        self._handler_task: asyncio.Task[None] | None = None
        self._cut = False
        self._drain_expired = False

    async def send_head(self) -> None:
        if not self.head_sent:
            self.head_sent = True
            await self.send(dict(_INVOKE_HEAD))

    def cut(self) -> None:
        if self._handler_task is not None and not self._handler_task.done():
            self._cut = True
            self._handler_task.cancel()

    def end_input(self) -> None:
        """Stopping: the input ends here (a handler waiting for the server suspends)."""
        self._ending = True
        self.inv.need_input = None
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
        elif self._reader is None and self.vm.ready and not self.input_done.is_set():
            self._end_of_input()  # no reader yet: a handler that waits from now on suspends

    async def run(self) -> None:
        self.app._attempts.add(self)
        handler_task: asyncio.Task[None] | None = None
        invocation_id: str | None = None
        try:
            if await self._read(until_ready=True):
                if self._ending:
                    self._end_of_input()
                else:
                    self.inv.need_input = self._start_reader
            if self.vm.ready and not self.vm.closed:
                invocation_id = self.vm.start_info().invocation_id
                self.app.live[invocation_id] = self.inv
                handler_task = self.loop.create_task(self.inv.run_handler(context_for(self.inv)))
                self._handler_task = handler_task
                await self._pump(handler_task)
            if self._cut:
                self.vm.sys_error(503, "the deployment stopped before the handler could finish")
            await self._send_output()
            # The server closes the request once it saw our terminal message; read to the end
            # (here, when the handler never waited for the server and so no reader started).
            if not self.input_done.is_set():
                await self._drain()
        finally:
            self.app._attempts.discard(self)
            if invocation_id is not None and self.app.live.get(invocation_id) is self.inv:
                del self.app.live[invocation_id]
            if handler_task is not None and not handler_task.done():
                handler_task.cancel()
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader

    async def _drain(self) -> None:
        """Wait for the end of the request, for ``DRAIN_TIMEOUT`` at most; read it here when
        the handler never waited for the server (so no reader started)."""
        task = self.task
        self.app._drains.add(self, lambda: self._drain_over(task), self.loop)
        try:
            if self._reader is None and not self._ending:
                self.inv.need_input = None
                await self._read(until_ready=False)
            else:
                await self.input_done.wait()
        except asyncio.CancelledError:
            if not self._drain_expired or task.uncancel() > 0:
                raise  # cancelled from outside too
        finally:
            self.app._drains.discard(self)

    def _drain_over(self, task: asyncio.Task[Any]) -> None:
        self._drain_expired = True
        task.cancel()

    def _start_reader(self) -> None:
        """The handler waits for the server: read the request body as it comes from now on."""
        if self._reader is None and not self.input_done.is_set():
            self._reader = self.loop.create_task(self._read(until_ready=False))

    async def _pump(self, handler_task: asyncio.Task[None]) -> None:
        """Send output as the handler produces it, until the handler is over. One event wakes
        the pump for all (the handler's end and the head's timer set ``output`` too): no task
        per wait."""
        output = self.inv.output
        handler_task.add_done_callback(lambda _: output.set())
        self.app._heads.add(self, output.set, self.loop)
        try:
            while True:
                output.clear()
                await self._send_output()
                if handler_task.done():
                    break
                await output.wait()
                if not self.head_sent and not self.vm.has_output and not handler_task.done():
                    await self.send_head()  # the head's timer: the handler has no output yet
        finally:
            self.app._heads.discard(self)
        with contextlib.suppress(asyncio.CancelledError):
            await handler_task

    async def _send_output(self) -> None:
        out = self.vm.take_output()
        if out:
            await self.send_head()
            await self.send({"type": "http.response.body", "body": out, "more_body": True})

    async def _read(self, *, until_ready: bool) -> bool:
        """Feed the request body to the VM. With ``until_ready``, stop once the journal is
        complete and return True if the body goes on; otherwise read it to its end (False)."""
        vm, inv = self.vm, self.inv
        ended = True
        try:
            while True:
                if until_ready and vm.ready:
                    ended = False
                    return True
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    break
                body = message.get("body", b"")
                if body and not vm.closed:
                    vm.feed(body)
                inv.progress.set()
                if not message.get("more_body", False):
                    break
            if not vm.closed:
                vm.feed_eof()
        except asyncio.CancelledError:
            if until_ready or not self._ending or self._reader is None:  # the attempt's own task
                raise
            if vm.ready and not vm.closed:
                vm.feed_eof()  # stopping: the input ends here
        except VMError as exc:
            log.warning("invocation stream rejected: %s", exc)
            vm.fail(exc)
            inv.flush()
        finally:
            if ended:
                self._input_closed()
        return False

    def _end_of_input(self) -> None:
        if self.vm.ready and not self.vm.closed:
            self.vm.feed_eof()
        self._input_closed()

    def _input_closed(self) -> None:
        self.vm.input_closed = True
        self.input_done.set()
        self.inv.progress.set()


def app(
    services: Iterable[ServiceDefinition],
    *,
    clock: Callable[[], int] | None = None,
    identity_keys: Iterable[str] | None = None,
) -> App:
    """The ASGI application serving ``services`` (pass it to ``perdure.serve`` or any server);
    ``clock`` and ``identity_keys``: see ``App``."""
    return App(services, clock=clock, identity_keys=identity_keys)


__all__ = ["App", "app"]
