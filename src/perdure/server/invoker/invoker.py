"""The invoker: starts attempts for the engine, routes forwarded notifications into them, and
aborts them. At most one live attempt per invocation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import httpx

from perdure.protocol import Frame, InvocationId
from perdure.protocol import messages as m
from perdure.protocol.identity import SigningKey
from perdure.server.engine.effects import AttemptStart
from perdure.server.invoker.attempt import Attempt, AttemptPlan
from perdure.server.invoker.h2 import H2Pool
from perdure.server.invoker.local import LocalApps

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

log = logging.getLogger("perdure.server.invoker")


class Invoker:
    def __init__(
        self, engine: Engine, local: LocalApps | None = None, identity: SigningKey | None = None
    ) -> None:
        self.engine = engine
        self.identity = identity
        """The key that signs every request to a deployment (request identity), if any."""
        self.local = local or LocalApps()
        self.pool = H2Pool()
        self.http11 = httpx.AsyncClient(http1=True, http2=False, timeout=None)
        self.attempts: dict[InvocationId, Attempt] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepting = True

    # -- AttemptRunner ---------------------------------------------------------------------------

    def start(self, start: AttemptStart) -> None:
        """Plan an attempt from what the engine hands over (what the batch that started it
        committed) and run it."""
        if not self.accepting:
            return
        invocation_id = start.invocation.id
        old = self.attempts.pop(invocation_id, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        try:
            plan = self._plan(start)
        except Exception as exc:  # a bad stored value: fail this invocation, not the dispatch
            log.exception("planning an attempt of %s failed", invocation_id)
            message = f"internal error planning an attempt: {type(exc).__name__}: {exc}"
            asyncio.get_running_loop().call_soon(
                lambda: self.engine.run_for(
                    invocation_id, lambda core: core.on_internal_error(invocation_id, message)
                )
            )
            return
        if plan is None:
            return
        attempt = Attempt(
            plan,
            self.engine,
            pool=self.pool,
            http11=self.http11,
            local=self.local,
            is_current=lambda a: self.attempts.get(a.plan.invocation_id) is a,
            on_done=self._done,
            identity=self.identity,
        )
        self.attempts[invocation_id] = attempt
        task = asyncio.get_running_loop().create_task(attempt.run())
        attempt.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forward(self, invocation_id: InvocationId, frame: Frame) -> None:
        attempt = self.attempts.get(invocation_id)
        if attempt is not None:
            attempt.forward(frame)

    def abort(self, invocation_id: InvocationId) -> None:
        attempt = self.attempts.pop(invocation_id, None)
        if attempt is not None and attempt.task is not None:
            attempt.task.cancel()

    def restart(self, invocation_ids: Iterable[InvocationId]) -> None:
        """Start these invocations over on the code their deployment serves now (``perdure
        dev`` after a reload): a live attempt is cancelled and planned again from committed
        storage, once what was applied so far is committed (the engine's StartAttempt effect);
        one backing off after a failure is retried now."""
        ids = list(invocation_ids)
        if ids:
            self.engine.run(lambda core: [core.restart(i) for i in ids])

    def live(self, deployment_id: str) -> list[InvocationId]:
        """The invocations with a live attempt against this deployment."""
        return [i for i, a in self.attempts.items() if a.plan.deployment_id == deployment_id]

    def _done(self, attempt: Attempt) -> None:
        if self.attempts.get(attempt.plan.invocation_id) is attempt:
            del self.attempts[attempt.plan.invocation_id]

    # -- planning --------------------------------------------------------------------------------

    def _plan(self, start: AttemptStart) -> AttemptPlan | None:
        engine = self.engine
        registry = engine.registry
        inv = start.invocation
        invocation_id = inv.id
        service = registry.service(inv.service)
        if inv.deployment_id is not None:
            deployment = registry.deployments.get(inv.deployment_id)
            version = inv.protocol_version or 6
        else:
            deployment = registry.deployment_of(inv.service)
            version = deployment.protocol_version if deployment else 6
        if deployment is None or service is None:
            message = f"no deployment serves {inv.service} (pinned {inv.deployment_id})"
            asyncio.get_running_loop().call_soon(
                lambda: engine.run_for(
                    invocation_id, lambda core: core.on_failure(invocation_id, 503, message)
                )
            )
            return None
        handler = service.handler(inv.handler)
        journal = start.journal
        now = engine.clock.now_ms()
        start_message = m.StartMessage(
            id=invocation_id.to_bytes(),
            debug_id=str(invocation_id),
            known_entries=len(journal),
            state_map=[m.StateEntry(key=k, value=v) for k, v in start.state],
            partial_state=start.partial_state,
            key=inv.key,
            retry_count_since_last_stored_entry=inv.attempts_since_progress,
            duration_since_last_stored_entry=max(0, now - inv.last_append_at),
            random_seed=invocation_id.random_seed(),
        )
        payload = Frame.of(start_message).to_bytes() + b"".join(f.to_bytes() for f in journal)
        record = deployment.record
        return AttemptPlan(
            invocation_id=invocation_id,
            service=inv.service,
            handler=inv.handler,
            key=inv.key if inv.keyed else None,
            deployment_id=deployment.id,
            uri=record.uri,
            use_http_11=record.use_http_11,
            bidi=record.protocol_mode == "BIDI_STREAM" and not record.use_http_11,
            protocol_version=version,
            additional_headers=record.additional_headers,
            payload=payload,
            inactivity_timeout=service.retention(handler, "inactivity_timeout") / 1000,
            abort_timeout=service.retention(handler, "abort_timeout") / 1000,
        )

    # -- shutdown --------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Stop starting attempts; half-close live ones so they reach a safe point; wait."""
        self.accepting = False
        for attempt in list(self.attempts.values()):
            attempt.half_close()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    async def close(self) -> None:
        self.accepting = False
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.pool.close()
        await self.http11.aclose()
