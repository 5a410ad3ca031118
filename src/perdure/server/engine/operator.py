"""Operator actions (admin API): cancel, kill, purge, pause and resume. Each returns an outcome
word that the API maps to a status code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import InvocationId, MessageType
from perdure.protocol import messages as m
from perdure.server.engine import notifications as note
from perdure.server.engine import outbox
from perdure.server.engine.effects import AbortAttempt
from perdure.server.engine.messages import KillMessage, NotOwned
from perdure.server.records import CANCELED, KILLED, Status, TimerKind

if TYPE_CHECKING:
    from perdure.server.engine.core import Core

T = MessageType


def cancel(core: Core, invocation_id: InvocationId) -> str:
    """'done' (ended at once), 'appended' (cancel signal sent), 'completed', 'not_found'."""
    _check_owned(core, invocation_id)
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return "not_found"
    if inv.status is Status.COMPLETED:
        return "completed"
    if inv.status in (Status.SCHEDULED, Status.INBOXED):
        core.store.remove_from_inbox(inv.service, inv.key, inv.id)
        core._complete(inv, CANCELED)
        return "done"
    core._notify(inv.id, *note.signal(1, None, note.VOID))
    return "appended"


def kill(core: Core, invocation_id: InvocationId, _seen: set[InvocationId] | None = None) -> str:
    """End an invocation now with 409 killed, and its request-response children too."""
    _check_owned(core, invocation_id)
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return "not_found"
    if inv.status is Status.COMPLETED:
        return "completed"
    seen = _seen if _seen is not None else set()
    seen.add(inv.id)
    children = core.store.callees_of(inv.id, T.CALL_COMPLETION)
    remote = remote_callees(core, inv.id)
    if inv.status is Status.INBOXED:
        core.store.remove_from_inbox(inv.service, inv.key, inv.id)
    core.emit(AbortAttempt(inv.id))
    core._complete(inv, KILLED)
    for child in children:
        if child not in seen:
            core.kill(child, seen)
    with outbox.sending_as(core, inv.id.partition_key):
        for child in remote:
            if child not in seen:
                seen.add(child)
                outbox.send(core, child.partition_key, KillMessage(child))
    return "done"


def _check_owned(core: Core, invocation_id: InvocationId) -> None:
    """Operator actions act on owned invocations only (the API forwards to the owner)."""
    if not core.owns(invocation_id.partition_key):
        raise NotOwned(core.partitions.partition_of_id(invocation_id))


def remote_callees(core: Core, caller: InvocationId) -> list[InvocationId]:
    """The callees, in partitions owned elsewhere, of the caller's Calls that have no result
    yet (their sinks are kept by their own partitions, so the caller's journal tells)."""
    if core.local_only:
        return []
    calls = core.store.read_journal_of_type(caller, T.CALL)
    if not calls:
        return []
    pending: dict[str, int] = {}  # the id notification's key -> the result's completion id
    for frame in calls:
        call = frame.message()
        assert isinstance(call, m.CallCommand)
        pending[f"c{call.invocation_id_notification_idx}"] = call.result_completion_id
    callees = []
    for frame in core.store.read_journal_of_type(caller, T.CALL_INVOCATION_ID_COMPLETION):
        note_ = frame.message()
        assert isinstance(note_, m.CallInvocationIdCompletion)
        result_cid = pending.get(f"c{note_.completion_id}")
        if result_cid is None or core.store.has_notification(caller, [f"c{result_cid}"]):
            continue
        callee = InvocationId.parse(note_.invocation_id)
        if not core.owns(callee.partition_key):
            callees.append(callee)
    return callees


def purge(core: Core, invocation_id: InvocationId) -> str:
    _check_owned(core, invocation_id)
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return "not_found"
    if inv.status is not Status.COMPLETED:
        return "not_completed"
    core._purge(inv)
    return "done"


def pause(core: Core, invocation_id: InvocationId) -> str:
    """'pausing' (202), 'paused' (200, already), 'not_running' (409), 'not_found'."""
    _check_owned(core, invocation_id)
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return "not_found"
    if inv.status in (Status.PAUSED, Status.SUSPENDED):
        return "paused"
    if inv.status in (Status.INVOKED, Status.BACKING_OFF):
        core.store.delete_timers_of(inv.id, TimerKind.RETRY)
        inv.status = Status.PAUSED
        inv.modified_at = core.now()
        core.store.put_invocation(inv)
        core.emit(AbortAttempt(inv.id))
        return "pausing"
    return "not_running"


def resume(core: Core, invocation_id: InvocationId) -> str:
    """'done', 'completed' (409), 'not_started' (425), 'not_found'."""
    _check_owned(core, invocation_id)
    inv = core.store.get_invocation(invocation_id)
    if inv is None:
        return "not_found"
    if inv.status is Status.COMPLETED:
        return "completed"
    if inv.status in (Status.SCHEDULED, Status.INBOXED):
        return "not_started"
    if inv.status in (Status.PAUSED, Status.SUSPENDED, Status.BACKING_OFF):
        if inv.status is Status.PAUSED:
            inv.retry_count = 0
        core.store.delete_timers_of(inv.id, TimerKind.RETRY)
        core._start(inv)
    return "done"
