"""One attempt of an invocation: a single HTTP exchange with the deployment.

The request body carries Start and the replayed journal; in bidi mode (HTTP/2) it stays open and
carries every notification the engine forwards; in request/response mode it is closed right away.
The response body carries the SDK's commands, run proposals and finally End, Suspension or Error,
each handed to the engine in order as it arrives. After the terminal message the request side is
half-closed at once (SDKs wait for that before finishing their response).

Start and the journal are queued before anything else can be, so a stream always begins with
them, whatever the engine forwards while the stream is being opened. The inactivity timeout runs
from the last message the deployment sent: when it expires the request body is closed (the SDK
suspends at its next await); 0 closes it right after the journal, so every completion the
handler awaits comes from a fresh attempt's replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import httpx

from perdure.protocol import Frame, FrameDecoder, InvocationId, MessageType, ProtocolError
from perdure.protocol import messages as m
from perdure.protocol.identity import SigningKey, sign
from perdure.protocol.versions import invocation_content_type
from perdure.server.engine.requests import AttemptRejected
from perdure.server.invoker.h2 import H2Error, H2Pool, H2Refused
from perdure.server.invoker.local import LOCAL_SCHEME, LocalApps, LocalError, Stream

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

log = logging.getLogger("perdure.server.invoker")
T = MessageType
DRAIN_TIMEOUT = 5.0
SUSPECT_AFTER = 2.0
"""No response head after this long: ask the connection to prove it is alive (a PING)."""
FIRST_BYTE_TIMEOUT = 60.0
"""No response head after this long (or the abort timeout, if shorter): the attempt fails. SDKs
answer with the head before running the handler, so only a wedged deployment takes that long."""
REFUSED_RETRIES = 5
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


@functools.lru_cache(maxsize=256)
def _endpoint(uri: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, base path) of a deployment uri: parsed once, not per attempt."""
    url = urlsplit(uri)
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.scheme, url.hostname or "localhost", port, url.path.rstrip("/")


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
        self._outbox.put_nowait(plan.payload)  # first, before any forwarded notification
        self._closing = False
        if not plan.bidi or plan.inactivity_timeout <= 0:
            self.half_close()
        self._stream: Stream | None = None
        self._last_activity = time.monotonic()
        self._terminated = False
        self._sent: list[bytes] | None = []
        """What the request body carried so far, until a response head proves the deployment
        took the stream: a refused stream is sent again, whole, on another connection."""
        self._request_ended = False
        self.task: asyncio.Task[None] | None = None

    # -- control from the invoker --------------------------------------------------------------

    def forward(self, frame: Frame) -> None:
        """Queue a (durable) notification for the open request body."""
        if self.plan.bidi and not self._terminated:
            self._outbox.put_nowait(frame.to_bytes())

    def half_close(self) -> None:
        """Close the request body once what is queued is sent: the SDK suspends at its next
        await (inactivity, graceful stop)."""
        if not self._closing:
            self._closing = True
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
        _, host, port, base = _endpoint(self.plan.uri)
        return host, port, f"{base}/invoke/{self.plan.service}/{self.plan.handler}"

    async def _open(self) -> Stream:
        host, port, path = self._path()
        if _endpoint(self.plan.uri)[0] == LOCAL_SCHEME:
            return self.local.request(host, "POST", path, self._headers())
        return await self.pool.request(host, port, "POST", path, self._headers())

    async def _run_h2(self) -> None:
        for _ in range(REFUSED_RETRIES):
            writer: asyncio.Task[None] | None = None
            try:
                stream = await self._open()
                self._stream = stream
                writer = asyncio.get_running_loop().create_task(self._write(stream))
                await self._read_h2(stream)
                return
            except H2Refused:
                if self._sent is None:
                    raise
                log.debug("%s: stream refused, sending it again", self.plan.invocation_id)
            finally:
                if writer is not None:
                    writer.cancel()
                    with contextlib.suppress(asyncio.CancelledError, H2Error, LocalError, OSError):
                        await writer
        raise H2Error(f"the deployment refused the stream {REFUSED_RETRIES} times")

    async def _write(self, stream: Stream) -> None:
        for sent in self._sent or ():  # what a refused stream carried before
            await stream.send(sent)
        if self._request_ended:
            await stream.close_request()
            return
        while True:
            data = await self._outbox.get()
            if data is None:
                self._request_ended = True
                await stream.close_request()
                return
            if self._sent is not None:
                self._sent.append(data)
            await stream.send(data)

    async def _response_head(self, stream: Stream) -> tuple[int, dict[str, str]]:
        """The response head within the first-byte timeout; a late one makes the connection
        prove it is alive (a dead one fails the stream long before)."""
        limit = min(self.plan.abort_timeout, FIRST_BYTE_TIMEOUT)
        suspect = getattr(stream, "suspect", None)
        # A timer, not a task and asyncio.wait per attempt: the head usually comes within ms.
        timer = None
        if suspect is not None:
            timer = asyncio.get_running_loop().call_later(SUSPECT_AFTER, suspect)
        try:
            async with asyncio.timeout(limit):
                return await stream.response()
        except TimeoutError:
            raise H2Error(f"the deployment sent no response head in {limit:g} s") from None
        finally:
            if timer is not None:
                timer.cancel()

    async def _read_h2(self, stream: Stream) -> None:
        status, headers = await self._response_head(stream)
        self._sent = None
        self._last_activity = time.monotonic()
        if not self._check_head(status, headers.get("content-type")):
            return
        decoder = FrameDecoder()
        closed_at: float | None = None
        while True:
            if self._closing or stream.request_closed:
                closed_at = closed_at or time.monotonic()
                timeout = closed_at + self.plan.abort_timeout - time.monotonic()
            else:
                timeout = self._last_activity + self.plan.inactivity_timeout - time.monotonic()
            try:
                # asyncio.timeout, not wait_for: no task per chunk read (3.11's wait_for makes one)
                async with asyncio.timeout(max(timeout, 0.001)):
                    chunk = await stream.read()
            except TimeoutError:
                if closed_at is not None:
                    self._fail(500, "the attempt exceeded the abort timeout")
                    return
                if time.monotonic() - self._last_activity >= self.plan.inactivity_timeout:
                    self.half_close()  # inactivity: let the SDK suspend
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
        headers = self._headers()
        content: bytes | AsyncIterator[bytes] = self.plan.payload
        if self.pool.gate is not None:
            headers.append(("content-length", str(len(self.plan.payload))))
            content = self._gated_body()
        response = await self.http11.post(
            full, content=content, headers=headers, timeout=self.plan.abort_timeout
        )
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

    async def _gated_body(self) -> AsyncIterator[bytes]:
        """The HTTP/1.1 request body, asked for by the client right before it writes it: the
        pool's gate (a cluster node's leases) is checked then, as the HTTP/2 connections check
        it at every write. The head alone starts nothing: an SDK waits for Start."""
        gate = self.pool.gate
        assert gate is not None
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def go() -> None:
            if not ready.done():
                ready.set_result(None)

        if gate.hold(go):
            await ready
        yield self.plan.payload

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
                applied = self.engine.run_for(inv, lambda core: core.on_command(inv, frame, pin))
                return self._contained(applied)
            if kind is T.PROPOSE_RUN_COMPLETION:
                applied = self.engine.run_for(inv, lambda core: core.on_proposal(inv, frame))
                return self._contained(applied)
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
                log.info("attempt of %s failed: [%s] %s", inv, message.code, text)
                if message.stacktrace:  # after a blank line: the first line stays the message
                    text += f"\n\n{message.stacktrace.rstrip()}"
                self._finish(lambda core: core.on_failure(inv, message.code, text, delay))
            case _:
                self._fail(571, f"unexpected message {kind.name} from the deployment")
        return True

    def _contained(self, applied: bool) -> bool:
        """After a command or proposal: False to go on; True (the attempt is over) when its
        transition raised and the engine failed the invocation instead."""
        if applied:
            return False
        self._terminated = True
        if self._is_current(self):
            self._on_done(self)
        return True

    def _finish(self, transition: Callable[..., None]) -> None:
        if self._is_current(self):
            self._on_done(self)
            inv = self.plan.invocation_id
            try:
                self.engine.run_for(inv, transition)
            except AttemptRejected as exc:  # e.g. End without Output: the attempt failed
                code, message = exc.code, exc.message
                log.info("attempt of %s failed: [%s] %s", inv, code, message)
                self.engine.run_for(inv, lambda core: core.on_failure(inv, code, message))

    def _fail(self, code: int, message: str) -> None:
        self._terminated = True
        if self._is_current(self):
            inv = self.plan.invocation_id
            log.info("attempt of %s failed: [%s] %s", inv, code, message)
            self._on_done(self)
            self.engine.run_for(inv, lambda core: core.on_failure(inv, code, message))
