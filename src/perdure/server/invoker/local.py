"""In-process deployments: the invoker talks to an ASGI app in the same event loop, no sockets.

``perdure dev`` and ``perdure.testing`` serve the user's services this way. A deployment whose uri
is ``local://NAME`` is looked up in ``LocalApps``; discovery and attempts then go through
``LocalStream``, which plays the part of an HTTP/2 stream (same methods as ``H2Stream``) by calling
the app directly. The bytes exchanged are the same framed protocol messages as over the network,
so the engine and the SDK cannot tell the difference, and a journal written in-process replays
over HTTP and back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any, Protocol

from perdure.server.invoker.mailbox import Mailbox

log = logging.getLogger("perdure.server.invoker")

LOCAL_SCHEME = "local"
IN_PROCESS = "perdure.in_process"
"""The ASGI scope extension that marks a request from the server in the same process (no HTTP
server sets it), which an app verifying request identity may trust without a signature."""

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Stream(Protocol):
    """One request/response exchange with a deployment, as the attempt and discovery use it."""

    request_closed: bool
    finished: bool

    async def response(self) -> tuple[int, dict[str, str]]: ...
    async def read(self) -> bytes | None: ...
    async def send(self, data: bytes) -> None: ...
    async def close_request(self) -> None: ...
    def reset(self) -> None: ...


class LocalError(Exception):
    """The in-process app failed or the stream was used after a reset."""


class LocalStream:
    """A request to an ASGI app running as a task of the current event loop."""

    def __init__(
        self, app: ASGIApp, method: str, path: str, headers: Sequence[tuple[str, str]], *,
        end_stream: bool,
    ) -> None:  # fmt: skip
        self.request_closed = False
        self.finished = False
        loop = asyncio.get_running_loop()
        self._request: Mailbox[dict[str, Any]] = Mailbox(loop)
        self._data: Mailbox[bytes | Exception | None] = Mailbox(loop)
        self._response: asyncio.Future[tuple[int, dict[str, str]]] = loop.create_future()
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "2",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
            "client": None,
            "server": None,
            "extensions": {IN_PROCESS: {}},
        }
        if end_stream:
            self._close()
        self._task = loop.create_task(self._run(app, scope))

    async def response(self) -> tuple[int, dict[str, str]]:
        return await self._response

    async def read(self) -> bytes | None:
        item = await self._data.get()
        if isinstance(item, Exception):
            raise item
        return item

    async def send(self, data: bytes) -> None:
        if self.request_closed:
            raise LocalError("the request body is already closed")
        self._request.put({"type": "http.request", "body": data, "more_body": True})

    async def close_request(self) -> None:
        if not self.request_closed:
            self._close()

    def reset(self) -> None:
        """Abort the exchange: the app sees a disconnect and its task is cancelled."""
        self.request_closed = True
        self._request.put({"type": "http.disconnect"})
        self._task.cancel()
        self._end(LocalError("the stream was reset"))

    def _close(self) -> None:
        self.request_closed = True
        self._request.put({"type": "http.request", "body": b"", "more_body": False})

    async def _receive(self) -> dict[str, Any]:
        return await self._request.get()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if self.finished:
            return
        if message["type"] == "http.response.start":
            headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
            if not self._response.done():
                self._response.set_result((int(message["status"]), headers))
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            if body:
                self._data.put(bytes(body))
            if not message.get("more_body", False):
                self._end(None)

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            self._end(LocalError("the stream was reset"))
            raise
        except Exception as exc:
            log.exception("the in-process deployment failed")
            self._end(LocalError(f"the in-process deployment raised {type(exc).__name__}: {exc}"))
        else:
            self._end(None if self._response.done() else LocalError("no response from the app"))

    def _end(self, error: Exception | None) -> None:
        if self.finished:
            return
        self.finished = True
        if error is not None and not self._response.done():
            self._response.set_exception(error)
            self._response.exception()  # mark retrieved: the reader may never ask
        self._data.put(error)


class LocalApps:
    """The in-process apps by name; ``local://NAME`` deployments resolve here."""

    def __init__(self) -> None:
        self._apps: dict[str, ASGIApp] = {}

    def mount(self, name: str, app: ASGIApp) -> str:
        """Serve ``app`` as ``local://name`` (replacing what was mounted there); returns the uri."""
        name = name.lower()  # a uri's host part is case-insensitive
        self._apps[name] = app
        return f"{LOCAL_SCHEME}://{name}"

    def get(self, name: str) -> ASGIApp | None:
        return self._apps.get(name.lower())

    def request(
        self, name: str, method: str, path: str, headers: Sequence[tuple[str, str]], *,
        end_stream: bool = False,
    ) -> LocalStream:  # fmt: skip
        app = self.get(name)
        if app is None:
            raise LocalError(f"no in-process app is mounted as {LOCAL_SCHEME}://{name}")
        return LocalStream(app, method, path, headers, end_stream=end_stream)
