"""``Harness``: perdure's server in-process, for a test suite.

It runs a ``Runtime`` on a fresh SQLite store, serves the given services as the in-process
deployment ``local://harness``, and hands out a client over an in-process transport: no
sockets anywhere. With a virtual clock it jumps over timers whenever nothing is running (the
rule is in ``perdure.testing``'s docstring and ``activity``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

import httpx

from perdure.client import AsyncClient
from perdure.protocol import InvalidIdError, InvocationId
from perdure.sdk.definitions import ServiceDefinition
from perdure.sdk.endpoint import App
from perdure.server.invoker.local import ASGIApp, Receive, Scope, Send
from perdure.server.records import TimerKind
from perdure.server.registry import Defaults
from perdure.server.runtime import Runtime
from perdure.testing.activity import Activity
from perdure.testing.clock import VirtualClock, WallClock
from perdure.testing.views import InvocationInfo, JournalEntry, decode_bytes

log = logging.getLogger("perdure.testing")

DEPLOYMENT_NAME = "harness"
ADVANCE_POLL = 0.002
"""Seconds between two looks of the auto-advancer at a harness that was busy."""
WAKE_KINDS = (TimerKind.SLEEP, TimerKind.START, TimerKind.RETRY)
"""Timers auto-advance jumps to: ones an invocation waits for (not retention expiry)."""


class HarnessError(Exception):
    """The harness was used wrongly (not started, unknown invocation, undecodable state)."""


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


Services = App | ServiceDefinition | Iterable[App | ServiceDefinition]


def _definitions(services: Services) -> list[ServiceDefinition]:
    items: Iterable[App | ServiceDefinition]
    items = [services] if isinstance(services, App | ServiceDefinition) else services
    found: list[ServiceDefinition] = []
    for item in items:
        if isinstance(item, App):
            found.extend(item.services.values())
        else:
            found.append(item)
    if not found:
        raise ValueError("a harness needs at least one service, virtual object or workflow")
    return found


def _request_response(app: App) -> ASGIApp:
    """``app`` as if reached over HTTP/1.1: discovery answers REQUEST_RESPONSE, so every
    attempt gets Start and the journal, then a closed request body. Nothing reaches a handler
    while it runs: each await of something not journaled yet suspends, and the next attempt
    replays (the inactivity timeout 0 alone leaves a fast answer room to arrive in time)."""

    async def as_http11(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "http_version": "1.1"}, receive, send)

    return as_http11


class Harness:
    """An in-process perdure server for tests; use it as ``async with Harness([...]) as h``.

    services: ServiceDefinitions and/or Apps; they are served together in-process.
    virtual_clock: True (default) runs engine, invoker and SDK on a ``VirtualClock`` that
        auto-advances to the next timer when nothing runs; False runs on real time.
    always_replay: every await suspends the handler and the next attempt replays its journal
        (attempts are request-response and the inactivity timeout is 0), which makes
        non-determinism fail loudly.
    data_dir: where the SQLite store lives; a fresh temporary directory (removed at exit) when
        not given. A harness on an existing data_dir resumes what is stored there.
    defaults: server defaults (retention, retry policy, timeouts); ``always_replay`` overrides
        the inactivity timeout.
    start: the virtual clock's starting time (default: now).
    """

    def __init__(
        self,
        services: Services,
        *,
        virtual_clock: bool = True,
        always_replay: bool = False,
        data_dir: Path | str | None = None,
        defaults: Defaults | None = None,
        start: datetime | None = None,
    ) -> None:
        self._definitions = _definitions(services)
        self.clock: VirtualClock | WallClock = VirtualClock(start) if virtual_clock else WallClock()
        self.always_replay = always_replay
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._defaults = defaults or Defaults()
        if always_replay:
            self._defaults = dataclasses.replace(self._defaults, inactivity_timeout=0)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._runtime: Runtime | None = None
        self._activity: Activity | None = None
        self._client: AsyncClient | None = None
        self._admin: httpx.AsyncClient | None = None
        self._advancer: asyncio.Task[None] | None = None
        self.app = App(self._definitions, clock=self.clock.now_ms)
        """The ASGI app the harness serves in-process (the given services, on its clock)."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runtime is not None:
            raise HarnessError("the harness is already started")
        if self._data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="perdure-harness-")
            data_dir = Path(self._tmp.name)
        else:
            data_dir = self._data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        runtime = Runtime(
            data_dir / "perdure.sqlite3",
            defaults=self._defaults,
            clock=self.clock,
            ingress_url="http://harness",
            synchronous="OFF",
        )
        self._runtime = runtime
        try:
            runtime.start()
            served = _request_response(self.app) if self.always_replay else self.app
            await runtime.mount(DEPLOYMENT_NAME, served)
        except BaseException:
            await self.stop()
            raise
        self._activity = activity = Activity(runtime, [self.app])
        self._client = AsyncClient(
            "http://harness", transport=httpx.ASGITransport(app=activity.ingress())
        )
        self._admin = httpx.AsyncClient(
            base_url="http://harness-admin", transport=httpx.ASGITransport(app=activity.admin())
        )
        if isinstance(self.clock, VirtualClock):
            self._advancer = asyncio.get_running_loop().create_task(self._auto_advance(self.clock))

    async def stop(self) -> None:
        """Stop the advancer, let live attempts stop, close the store (and its temp dir)."""
        if self._advancer is not None:
            self._advancer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._advancer
            self._advancer = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._admin is not None:
            await self._admin.aclose()
            self._admin = None
        if self._runtime is not None:
            await self._runtime.stop(1.0)
            self._runtime = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def __aenter__(self) -> Harness:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what tests use --------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise HarnessError("the harness is not started: use `async with Harness(...) as h`")
        return self._runtime

    @property
    def client(self) -> AsyncClient:
        """A ``perdure.client.AsyncClient`` talking to the ingress in-process."""
        if self._client is None:
            raise HarnessError("the harness is not started: use `async with Harness(...) as h`")
        return self._client

    @property
    def admin(self) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` for the admin API (cancel, kill, pause...), in-process."""
        if self._admin is None:
            raise HarnessError("the harness is not started: use `async with Harness(...) as h`")
        return self._admin

    def state(self, service: str | ServiceDefinition, key: str) -> dict[str, Any]:
        """The K/V state of an object or workflow key, each value JSON-decoded."""
        name = service if isinstance(service, str) else service.name
        decoded: dict[str, Any] = {}
        for state_key, raw in self.state_raw(name, key).items():
            value = decode_bytes(raw)
            if isinstance(value, bytes) and raw:
                raise HarnessError(
                    f"state {state_key!r} of {name}/{key} is not JSON; use state_raw()"
                )
            decoded[state_key] = value
        return decoded

    def state_raw(self, service: str | ServiceDefinition, key: str) -> dict[str, bytes]:
        """The K/V state of an object or workflow key, as stored bytes."""
        name = service if isinstance(service, str) else service.name
        return {k.decode(): v for k, v in self.runtime.engine.state(name, key)}

    def invocation(self, invocation: str | _HasId) -> InvocationInfo:
        """Status and result of an invocation (an ``inv_1…`` id or a send handle)."""
        invocation_id = self._id(invocation)
        inv = self.runtime.engine.invocation(invocation_id)
        if inv is None:
            raise HarnessError(f"no invocation {invocation_id} (never created, or purged)")
        return InvocationInfo.of(inv)

    def invocations(self) -> list[InvocationInfo]:
        """Every invocation the store holds, oldest first."""
        found = [InvocationInfo.of(inv) for inv in self.runtime.engine.invocations()]
        return sorted(found, key=lambda info: info.created_at)

    def journal(self, invocation: str | _HasId) -> list[JournalEntry]:
        """The journal of an invocation, entry by entry (see ``JournalEntry``)."""
        invocation_id = self._id(invocation)
        if self.runtime.engine.invocation(invocation_id) is None:
            raise HarnessError(f"no invocation {invocation_id} (never created, or purged)")
        frames = self.runtime.engine.journal(invocation_id)
        return [JournalEntry.of(index, frame) for index, frame in enumerate(frames)]

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until nothing runs and nothing is due, and no invocation waits for a timer
        (unless the virtual clock is held: then such timers wait for ``advance``). With an
        auto-advancing virtual clock the clock jumps over the timers meanwhile.
        ``timeout`` is in real seconds; past it, HarnessError says what was still going on."""
        activity = self._started_activity()
        reason: str | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    reason = await activity.quiet()
                    if reason is None:
                        reason = self._pending_timer()
                        if reason is None:
                            return
                    await asyncio.sleep(ADVANCE_POLL)
        except TimeoutError:
            raise HarnessError(f"the harness did not settle in {timeout} s: {reason}") from None

    # -- internals -------------------------------------------------------------------------------

    def _started_activity(self) -> Activity:
        if self._activity is None:
            raise HarnessError("the harness is not started: use `async with Harness(...) as h`")
        return self._activity

    def _pending_timer(self) -> str | None:
        """Why settle() must keep waiting for a timer that will fire without the test's help:
        one auto-advance will jump to, or (on real time) one that real time will reach."""
        if isinstance(self.clock, VirtualClock) and self.clock.held:
            return None
        at = self.runtime.engine.next_timer_at(WAKE_KINDS)
        return None if at is None else "an invocation waits for a timer"

    def _id(self, invocation: str | _HasId) -> InvocationId:
        text = invocation if isinstance(invocation, str) else invocation.id
        try:
            return InvocationId.parse(text)
        except InvalidIdError as exc:
            raise HarnessError(f"bad invocation id {text!r}: {exc}") from None

    async def _auto_advance(self, clock: VirtualClock) -> None:
        """Jump to the next timer an invocation waits for, whenever the harness is quiet."""
        activity = self._started_activity()
        engine = self.runtime.engine
        while True:
            await asyncio.sleep(ADVANCE_POLL)
            at = engine.next_timer_at(WAKE_KINDS)
            if clock.held or at is None or at <= clock.now_ms():
                continue  # nothing to jump to (a due timer fires without help)
            if await activity.quiet() is not None or clock.held:
                continue
            at = engine.next_timer_at(WAKE_KINDS)
            if at is not None and at > clock.now_ms():
                log.debug("auto-advance: %s -> %s", clock.now_ms(), at)
                clock.move_to(at)
