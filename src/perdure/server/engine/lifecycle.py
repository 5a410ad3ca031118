"""An invocation's lifecycle: created (or found again, for a workflow run or an idempotency key),
started or queued behind its object key's lock, and what its attempts end with: End, Suspension,
or a failure (back off, pause, or kill as the retry policy says)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from perdure.protocol import Frame, InvocationId, MessageType, partition_key_of
from perdure.protocol import messages as m
from perdure.server.engine.effects import StartAttempt, TimerSet
from perdure.server.engine.messages import NotOwned
from perdure.server.engine.requests import (
    PROTOCOL_VIOLATION,
    AttemptRejected,
    InvokeOutcome,
    InvokeRequest,
    UnknownTarget,
)
from perdure.server.records import (
    WORKFLOW_ALREADY_INVOKED,
    Invocation,
    Result,
    Sink,
    Status,
    TimerKind,
)

if TYPE_CHECKING:
    from perdure.server.engine.core import Core

T = MessageType


def invoke(core: Core, req: InvokeRequest) -> InvokeOutcome:
    service = core.registry.service(req.service)
    handler = service.handler(req.handler) if service else None
    if service is None or handler is None:
        raise UnknownTarget(f"{req.service}/{req.handler}")
    handler_ty = service.handler_type(handler)
    keyed = service.ty != "SERVICE"
    key = req.key if keyed else ""
    invocation_id = req.invocation_id or _new_id(core, req, handler_ty, keyed, key)
    if not core.owns(invocation_id.partition_key):
        raise NotOwned(core.partitions.partition_of_id(invocation_id))

    if handler_ty == "WORKFLOW" or req.idempotency_key is not None:
        existing = core.store.get_invocation(invocation_id)
        if existing is not None:
            return duplicate(core, existing, req, handler_ty == "WORKFLOW")

    now = core.now()
    inv = Invocation(
        id=invocation_id,
        service=req.service,
        handler=req.handler,
        key=key,
        service_ty=service.ty,
        handler_ty=handler_ty,
        status=Status.INVOKED,
        created_at=now,
        modified_at=now,
        last_append_at=now,
        idempotency_key=req.idempotency_key,
        invoked_by=req.invoked_by,
    )
    headers = [m.Header(key=k, value=v) for k, v in req.headers]
    entry = m.InputCommand(headers=headers, value=m.Value(content=req.body))
    core.store.append_journal(inv, Frame.of(entry), now)
    if req.idempotency_key is not None:
        core.store.put_idempotency(
            req.service, key, req.handler, req.idempotency_key, invocation_id
        )
    if req.caller is not None:
        caller, cid = req.caller
        core.store.add_sink(invocation_id, Sink(caller, cid, T.CALL_COMPLETION))
    if req.execution_time is not None and req.execution_time > now:
        inv.status = Status.SCHEDULED
        inv.execution_time = req.execution_time
        core.store.add_timer(req.execution_time, invocation_id, TimerKind.START)
        core.emit(TimerSet(req.execution_time))
        core.store.put_invocation(inv)
    else:
        start_or_queue(core, inv)
    return InvokeOutcome(invocation_id, execution_time=inv.execution_time)


def invocation_id_for(core: Core, req: InvokeRequest) -> InvocationId:
    """The id of the invocation ``req`` asks for: deterministic for a workflow run or an
    idempotency key, in the key's partition for an object; a plain service call is placed in a
    partition of the sender (its innermost ``sending_as``, else a random owned one), so it needs
    no hop."""
    service = core.registry.service(req.service)
    handler = service.handler(req.handler) if service else None
    if service is None or handler is None:
        raise UnknownTarget(f"{req.service}/{req.handler}")
    keyed = service.ty != "SERVICE"
    return _new_id(core, req, service.handler_type(handler), keyed, req.key if keyed else "")


def _new_id(
    core: Core, req: InvokeRequest, handler_ty: str | None, keyed: bool, key: str
) -> InvocationId:
    if handler_ty == "WORKFLOW":
        return InvocationId.for_workflow(req.service, key)
    if req.idempotency_key is not None:
        return InvocationId.for_idempotent_request(
            req.service, req.handler, req.idempotency_key, key=key if keyed else None
        )
    if keyed:
        return InvocationId.new(partition_key_of(key))
    if core.local_only:
        return InvocationId.new()
    if core.senders:
        return InvocationId.new(core.partitions.random_key(core.senders[-1]))
    if not core.owned:
        raise NotOwned(-1)
    owned = sorted(core.owned)
    pick = owned[int.from_bytes(os.urandom(2), "big") % len(owned)]
    return InvocationId.new(core.partitions.random_key(pick))


def duplicate(core: Core, existing: Invocation, req: InvokeRequest, run: bool) -> InvokeOutcome:
    """A request whose deterministic id is taken: a workflow run or an idempotency key."""
    outcome = InvokeOutcome(
        existing.id,
        previously_accepted=True,
        execution_time=existing.execution_time,
        expires_at=existing.expires_at,
    )
    if req.send:
        return outcome
    if run:
        return InvokeOutcome(existing.id, result=WORKFLOW_ALREADY_INVOKED)
    if existing.status is Status.COMPLETED:
        return InvokeOutcome(existing.id, result=existing.result, expires_at=existing.expires_at)
    if req.caller is not None:
        caller, cid = req.caller
        core.store.add_sink(existing.id, Sink(caller, cid, T.CALL_COMPLETION))
    return InvokeOutcome(existing.id)


def start_or_queue(core: Core, inv: Invocation) -> None:
    if inv.exclusive:
        holder = core.store.lock_holder(inv.service, inv.key)
        if holder is not None and holder != str(inv.id):
            inv.status = Status.INBOXED
            inv.modified_at = core.now()
            core.store.push_inbox(inv.service, inv.key, inv.id)
            core.store.put_invocation(inv)
            return
        core.store.take_lock(inv.service, inv.key, inv.id)
    start(core, inv)


def start(core: Core, inv: Invocation) -> None:
    inv.status = Status.INVOKED
    inv.awaiting = []
    inv.next_retry_at = None
    inv.modified_at = core.now()
    core.store.put_invocation(inv)
    core.emit(StartAttempt(inv.id))


def recover(core: Core, partitions: Iterable[int] | None = None) -> int:
    """After a restart (or acquiring ``partitions``): start an attempt for every invocation
    that was running (in those partitions only, when given; else in the owned ones)."""
    wanted = set(core.owned if partitions is None else partitions)
    running = [
        inv
        for inv in core.store.invocations_with_status(Status.INVOKED)
        if core.partitions.partition_of_id(inv.id) in wanted
    ]
    for inv in running:
        core.emit(StartAttempt(inv.id))
    return len(running)


def restart(core: Core, invocation_id: InvocationId) -> bool:
    """Start a running invocation over from its journal (new code under its deployment):
    a running one gets a fresh attempt (the invoker replaces the live one), one backing off
    is retried now. False when it is in neither state."""
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return False
    if inv.status is Status.INVOKED:
        core.emit(StartAttempt(inv.id))
        return True
    if inv.status is Status.BACKING_OFF:
        start(core, inv)
        return True
    return False


def on_end(core: Core, invocation_id: InvocationId) -> None:
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is not Status.INVOKED:
        return
    if inv.result is None:
        raise AttemptRejected(PROTOCOL_VIOLATION, "End without an Output in the journal")
    core._complete(inv, inv.result)


def on_suspension(core: Core, invocation_id: InvocationId, message: m.SuspensionMessage) -> None:
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is not Status.INVOKED:
        return
    awaiting = (
        [f"c{c}" for c in message.waiting_completions]
        + [f"s{s}" for s in message.waiting_signals]
        + [f"n{n}" for n in message.waiting_named_signals]
    )
    if not awaiting:
        core.on_failure(invocation_id, PROTOCOL_VIOLATION, "suspension awaiting nothing")
        return
    if core.store.has_notification(inv.id, awaiting):  # arrived while the SDK suspended
        start(core, inv)
        return
    inv.status = Status.SUSPENDED
    inv.awaiting = awaiting
    inv.modified_at = core.now()
    core.store.put_invocation(inv)


def on_failure(
    core: Core,
    invocation_id: InvocationId,
    code: int,
    message: str,
    next_retry_delay: int | None = None,
) -> None:
    """The attempt failed (ErrorMessage, transport, protocol): back off, pause, or kill."""
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is not Status.INVOKED:
        return
    now = core.now()
    # A delay the SDK chose (its ctx.run retry policy) does not consume the server's budget.
    if next_retry_delay is None:
        inv.retry_count += 1
    inv.attempts_since_progress += 1
    inv.last_failure = f"[{code}] {message}"
    inv.modified_at = now
    service = core.registry.service(inv.service)
    policy = (
        service.retry_policy(service.handler(inv.handler))
        if service
        else core.registry.default_retry_policy()
    )
    if next_retry_delay is None and policy.exhausted(inv.retry_count):
        if policy.on_max_attempts == "KILL":
            core._complete(inv, Result.failure(code, message))
        else:
            inv.status = Status.PAUSED
            core.store.put_invocation(inv)
        return
    delay = next_retry_delay if next_retry_delay is not None else policy.delay(inv.retry_count)
    inv.status = Status.BACKING_OFF
    inv.next_retry_at = now + delay
    core.store.add_timer(inv.next_retry_at, inv.id, TimerKind.RETRY)
    core.emit(TimerSet(inv.next_retry_at))
    core.store.put_invocation(inv)
