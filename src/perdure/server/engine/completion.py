"""Completing an invocation: its result is stored and answered (waiting requests, callers and
attachers), its object key's lock passes to the next queued invocation (or queued state edit),
and it is purged when its retention ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import InvocationId, MessageType
from perdure.server.engine import notifications as note
from perdure.server.engine import outbox, state_edits
from perdure.server.engine.effects import Completed, TimerSet
from perdure.server.records import Invocation, Result, Status

if TYPE_CHECKING:
    from perdure.server.engine.core import Core


def retention_of(core: Core, inv: Invocation) -> int:
    service = core.registry.service(inv.service)
    if service is None:
        return core.registry.defaults.journal_retention
    handler = service.handler(inv.handler)
    if inv.handler_ty == "WORKFLOW":
        return service.retention(handler, "workflow_completion_retention")
    if inv.idempotency_key is not None:
        return service.retention(handler, "idempotency_retention")
    return service.retention(handler, "journal_retention")


def complete(core: Core, inv: Invocation, result: Result) -> None:
    now = core.now()
    inv.status = Status.COMPLETED
    inv.result = result
    inv.completed_at = now
    inv.modified_at = now
    inv.awaiting = []
    retention = retention_of(core, inv)
    inv.expires_at = now + retention
    core.store.delete_timers_of(inv.id)
    core.store.put_invocation(inv)
    core.emit(Completed(inv.id, result, inv.expires_at))
    sinks = core.store.take_sinks(inv.id)
    if sinks:
        with outbox.sending_as(core, inv.id.partition_key):
            for sink in sinks:
                kind = MessageType(sink.notification_type)
                core._notify(sink.caller, *note.completion(kind, sink.completion_id, result))
    if inv.exclusive and core.store.lock_holder(inv.service, inv.key) == str(inv.id):
        release_lock(core, inv.service, inv.key)
    if retention <= 0:
        purge(core, inv)
    else:  # no timer row: the stored ``expires_at`` is the timer (Timers.due_expiries)
        core.emit(TimerSet(inv.expires_at))


def release_lock(core: Core, service: str, key: str) -> None:
    core.store.release_lock(service, key)
    entry = core.store.pop_inbox(service, key)
    while entry is not None and state_edits.is_queued_edit(entry):
        state_edits.apply_queued(core.store, key, entry)  # queued behind the lock, like calls
        entry = core.store.pop_inbox(service, key)
    if entry is not None:
        nxt = core.store.get_invocation(InvocationId.parse(entry))
        if nxt is not None and nxt.status is Status.INBOXED:
            core.store.take_lock(service, key, nxt.id)
            core._start(nxt)
        else:
            release_lock(core, service, key)


def purge(core: Core, inv: Invocation) -> None:
    core.store.delete_invocation(inv.id)
    if inv.idempotency_key is not None:
        core.store.delete_idempotency(inv.id)
    if inv.handler_ty == "WORKFLOW":
        core.store.clear_all_state(inv.service, inv.key)
        core.store.clear_promises(inv.service, inv.key)
