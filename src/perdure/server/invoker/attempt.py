"""One attempt of an invocation: a single HTTP exchange with the deployment.

The request body carries Start and the replayed journal; in bidi mode (HTTP/2) it stays open and
carries every notification the engine forwards; in request/response mode it is closed right away.
The response body carries the SDK's commands, run proposals and finally End, Suspension or Error,
each handed to the engine in order as it arrives. After the terminal message the request side is
half-closed at once (SDKs wait for that before finishing their response).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx

from perdure.protocol import Frame, FrameDecoder, InvocationId, MessageType, ProtocolError
from perdure.protocol import messages as m
from perdure.protocol.identity import SigningKey, sign
from perdure.protocol.versions import invocation_content_type
from perdure.server.engine.core import AttemptRejected
from perdure.server.invoker.h2 import H2Error, H2Pool
from perdure.server.invoker.local import LOCAL_SCHEME, LocalApps, LocalError, Stream

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

log = logging.getLogger("perdure.server.invoker")
T = MessageType
DRAIN_TIMEOUT = 5.0
NO_TERMINAL = "the deployment ended the response without End, Suspension or Error"


@dataclass(frozen=True, slots=True)
class AttemptPlan:
    """Everything an attempt needs, taken from committed storage when it starts."""

    invocation_id: InvocationId
    service: str
    handler: str
    key: str | None
    deployment_id: str
    uri: str
    use_http_11: bool
    bidi: bool
    protocol_version: int
    additional_headers: dict[str, str]
    payload: bytes
    """Start + the journal, framed."""
    inactivity_timeout: float
    abort_timeout: float


class Attempt:
    def __init__(
        self,
        plan: AttemptPlan,
        engine: Engine,
        *,
        pool: H2Pool,
        http11: httpx.AsyncClient,
        local: LocalApps,
        is_current: Callable[[Attempt], bool],
        on_done: Callable[[Attempt], None],
        identity: SigningKey | None = None,
    ) -> None:
        self.plan = plan
        self.identity = identity
        self.engine = engine
        self.pool = pool
        self.http11 = http11
        self.local = local
        self._is_current = is_current
        self._on_done = on_done
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._stream: Stream | None = None
        self._last_activity = time.monotonic()
        self._terminated = False
        self.task: asyncio.Task[None] | None = None

    # -- control from the invoker --------------------------------------------------------------

    def forward(self, frame: Frame) -> None:
        """Queue a (durable) notification for the open request body."""
        if self.plan.bidi and not self._terminated:
            self._outbox.put_nowait(frame.to_bytes())

    def half_close(self) -> None:
        """Close the request body: the SDK suspends at its next await (graceful stop)."""
        self._outbox.put_nowait(None)

    # -- the exchange --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            if self.plan.use_http_11:
                await self._run_http11()
            else:
                await self._run_h2()
        except asyncio.CancelledError:
            if self._stream is not None:
                self._stream.reset()
            raise
        except (H2Error, LocalError, OSError, httpx.HTTPError, ProtocolError) as exc:
            self._fail(500, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("attempt of %s failed", self.plan.invocation_id)
            self._fail(500, f"{type(exc).__name__}: {exc}")
        finally:
            if self._stream is not None and not self._stream.finished:
                self._stream.reset()
            self._on_done(self)

    def _headers(self) -> list[tuple[str, str]]:
        ct = invocation_content_type(self.plan.protocol_version)
        headers = [
            ("content-type", ct),
            ("accept", ct),
            ("x-restate-invocation-id", str(self.plan.invocation_id)),
        ]
        if self.plan.key is not None:
            headers.append(("x-restate-service-key", quote(self.plan.key, safe="")))
        headers.extend((k.lower(), v) for k, v in self.plan.additional_headers.items())
        target = f"/invoke/{self.plan.service}/{self.plan.handler}"
        headers.extend(sign(self.identity, target, self.plan.key, time.time()))
        return headers

    def _path(self) -> tuple[str, int, str]:
        url = urlsplit(self.plan.uri)
        host = url.hostname or "localhost"
        port = url.port or (443 if url.scheme == "https" else 80)
        path = f"{url.path.rstrip('/')}/invoke/{self.plan.service}/{self.plan.handler}"
        return host, port, path

    async def _open(self) -> Stream:
        host, port, path = self._path()
        if urlsplit(self.plan.uri).scheme == LOCAL_SCHEME:
            return self.local.request(host, "POST", path, self._headers())
        return await self.pool.request(host, port, "POST", path, self._headers())

    async def _run_h2(self) -> None:
        stream = await self._open()
        self._stream = stream
        self._outbox.put_nowait(self.plan.payload)
        if not self.plan.bidi:
            self._outbox.put_nowait(None)
        writer = asyncio.get_running_loop().create_task(self._write(stream))
        try:
            await self._read_h2(stream)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, H2Error, LocalError, OSError):
                await writer

    async def _write(self, stream: Stream) -> None:
        while True:
            data = await self._outbox.get()
            if data is None:
                await stream.close_request()
                return
            if stream.request_closed:
                continue
            await stream.send(data)
            self._last_activity = time.monotonic()

    async def _read_h2(self, stream: Stream) -> None:
        status, headers = await asyncio.wait_for(stream.response(), self.plan.abort_timeout)
        if not self._check_head(status, headers.get("content-type")):
            return
        decoder = FrameDecoder()
        while True:
            if stream.request_closed:
                timeout = self.plan.abort_timeout
            else:
                timeout = self._last_activity + self.plan.inactivity_timeout - time.monotonic()
            try:
                chunk = await asyncio.wait_for(stream.read(), max(timeout, 0.001))
            except TimeoutError:
                if stream.request_closed:
                    self._fail(500, "the attempt exceeded the abort timeout")
                    return
                if time.monotonic() - self._last_activity >= self.plan.inactivity_timeout:
                    await stream.close_request()  # inactivity: let the SDK suspend
                continue
            if chunk is None:
                decoder.finish()
                self._fail(
                    500, "the deployment ended the response without End, Suspension or Error"
                )
                return
            self._last_activity = time.monotonic()
            for frame in decoder.feed(chunk):
                if not self._is_current(self):
                    return
                if self._on_frame(frame):
                    await stream.close_request()
                    await self._drain(stream)
                    return

    async def _drain(self, stream: Stream) -> None:
        with contextlib.suppress(TimeoutError, H2Error, LocalError):
            async with asyncio.timeout(DRAIN_TIMEOUT):
                while await stream.read() is not None:
                    pass

    async def _run_http11(self) -> None:
        _, _, path = self._path()
        url = urlsplit(self.plan.uri)
        full = f"{url.scheme}://{url.netloc}{path}"
        response = await self.http11.post(
            full, content=self.plan.payload, headers=self._headers(),
            timeout=self.plan.abort_timeout,
        )  # fmt: skip
        if not self._check_head(response.status_code, response.headers.get("content-type")):
            return
        decoder = FrameDecoder()
        for frame in decoder.feed(response.content):
            if not self._is_current(self):
                return
            if self._on_frame(frame):
                return
        decoder.finish()
        self._fail(500, NO_TERMINAL)

    def _check_head(self, status: int, content_type: str | None) -> bool:
        expected = invocation_content_type(self.plan.protocol_version)
        if not 200 <= status < 300:
            self._fail(status, f"the deployment answered HTTP {status}")
            return False
        if content_type != expected:
            self._fail(500, f"the deployment answered content-type {content_type!r}")
            return False
        return True

    # -- handing messages to the engine --------------------------------------------------------

    def _on_frame(self, frame: Frame) -> bool:
        """Apply one message; True when the attempt is over."""
        inv = self.plan.invocation_id
        pin = (self.plan.deployment_id, self.plan.protocol_version)
        kind = frame.type
        try:
            if kind.is_command:
                self.engine.run(lambda core: core.on_command(inv, frame, pin))
                return False
            if kind is T.PROPOSE_RUN_COMPLETION:
                self.engine.run(lambda core: core.on_proposal(inv, frame))
                return False
        except AttemptRejected as exc:
            self._fail(exc.code, exc.message)
            return True
        self._terminated = True
        message = frame.message()
        match message:
            case m.EndMessage():
                self._finish(lambda core: core.on_end(inv))
            case m.SuspensionMessage():
                self._finish(lambda core: core.on_suspension(inv, message))
            case m.ErrorMessage():
                delay = message.next_retry_delay if message.HasField("next_retry_delay") else None
                text = message.message
                if message.HasField("related_command_name"):
                    text += f" (command {message.related_command_name!r})"
                self._finish(lambda core: core.on_failure(inv, message.code, text, delay))
            case _:
                self._fail(571, f"unexpected message {kind.name} from the deployment")
        return True

    def _finish(self, transition: Callable[..., None]) -> None:
        if self._is_current(self):
            self._on_done(self)
            self.engine.run(transition)

    def _fail(self, code: int, message: str) -> None:
        self._terminated = True
        if self._is_current(self):
            inv = self.plan.invocation_id
            log.info("attempt of %s failed: [%s] %s", inv, code, message)
            self._on_done(self)
            self.engine.run(lambda core: core.on_failure(inv, code, message))
