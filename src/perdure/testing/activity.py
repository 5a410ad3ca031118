"""Whether anything inside a harness is running: the rule behind auto-advance and ``settle()``.

The harness is *quiet* when, for several event-loop rounds in a row:

* the engine has nothing applied and uncommitted and no effect left to release;
* no request sent through the harness's ingress or admin transport is being processed (an
  ingress request that only waits for an invocation's result does not count);
* every live attempt is *blocked*: its handler awaits only what the server will send (a
  notification, a timer, a promise, another invocation), and no ``ctx.run`` step of it is
  executing;
* no timer is due at the current time.

Hand-offs between the parts (a committed notification on its way to the SDK, the SDK's command
on its way to the engine) take a few loop rounds; asking for quiet over many consecutive rounds
makes a hand-off in flight show up as activity.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from perdure.sdk.endpoint import App
from perdure.server.invoker.local import ASGIApp, Receive, Scope, Send
from perdure.server.runtime import Runtime

QUIET_ROUNDS = 20
"""Event-loop rounds that must all look quiet before the harness counts as quiet."""


class Activity:
    """Watches a runtime, the apps it serves in-process, and the requests sent into it."""

    def __init__(self, runtime: Runtime, apps: Iterable[App]) -> None:
        self.runtime = runtime
        self.apps = list(apps)
        self.now_ms = runtime.engine.clock.now_ms
        self.ingress_requests = 0
        self.admin_requests = 0

    # -- request tracking ------------------------------------------------------------------------

    def ingress(self) -> ASGIApp:
        """The runtime's ingress, counting the requests in flight."""
        return self._counting(self.runtime.ingress, "ingress_requests")

    def admin(self) -> ASGIApp:
        """The runtime's admin API, counting the requests in flight."""
        return self._counting(self.runtime.admin, "admin_requests")

    def _counting(self, app: Any, counter: str) -> ASGIApp:
        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            setattr(self, counter, getattr(self, counter) + 1)
            try:
                await app(scope, receive, send)
            finally:
                setattr(self, counter, getattr(self, counter) - 1)

        return counted

    # -- the quiet rule --------------------------------------------------------------------------

    def busy(self) -> str | None:
        """What is running right now (None when nothing is)."""
        engine = self.runtime.engine
        if not engine.idle:
            return "the engine has uncommitted work"
        if self.admin_requests:
            return "an admin request is being processed"
        if self.ingress_requests > engine.waiting_requests():
            return "an ingress request is being processed"
        for invocation_id in self.runtime.invoker.attempts:
            if not self._blocked(str(invocation_id)):
                return f"an attempt of {invocation_id} is running"
        return None

    def timer_due(self) -> bool:
        due = self.runtime.engine.next_timer_at()
        return due is not None and due <= self.now_ms()

    def _blocked(self, invocation_id: str) -> bool:
        for app in self.apps:
            inv = app.live.get(invocation_id)
            if inv is not None:
                return inv.blocked
        return False  # not started in the SDK yet, or served elsewhere: count it as running

    async def quiet(self, rounds: int = QUIET_ROUNDS) -> str | None:
        """None when the harness stays quiet for ``rounds`` loop rounds, else what ran."""
        for _ in range(rounds):
            reason = self.busy()
            if reason is not None:
                return reason
            await asyncio.sleep(0)
        return "a timer is due" if self.timer_due() else None
