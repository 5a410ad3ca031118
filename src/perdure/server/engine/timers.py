"""Durable timers firing: a sleep completes, a delayed send starts, a retry begins, a completed
invocation's retention ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import MessageType
from perdure.server.engine import notifications as note
from perdure.server.engine.effects import TimerSet
from perdure.server.records import Status, Timer, TimerKind

if TYPE_CHECKING:
    from perdure.server.engine.core import Core

T = MessageType


def fire_timers(core: Core, now: int) -> int:
    """Fire every due timer (and retention end) of the owned partitions; returns how many
    fired."""
    store = core.store
    due = [
        t
        for t in [*store.due_timers(now), *store.due_expiries(now)]
        if core.owns(t.invocation_id.partition_key)
    ]
    for timer in due:
        core.fire_timer(timer)
    return len(due)


def fire_timer(core: Core, timer: Timer) -> None:
    core.store.delete_timer(timer)
    match timer.kind:
        case TimerKind.SLEEP:
            assert timer.completion_id is not None
            core._notify(
                timer.invocation_id,
                *note.completion(T.SLEEP_COMPLETION, timer.completion_id, note.VOID),
            )
        case TimerKind.START:
            inv = core.store.get_invocation(timer.invocation_id)
            if inv is not None and inv.status is Status.SCHEDULED:
                core._start_or_queue(inv)
        case TimerKind.RETRY:
            inv = core.store.get_invocation(timer.invocation_id)
            if inv is not None and inv.status is Status.BACKING_OFF:
                core._start(inv)
        case TimerKind.EXPIRE:
            inv = core.store.get_invocation(timer.invocation_id)
            if inv is not None and inv.status is Status.COMPLETED:
                core._purge(inv)


def retry_timer_later(core: Core, timer: Timer, at: int, message: str) -> None:
    """Firing ``timer`` raised: fire it again at ``at``, and say why on its invocation."""
    if timer.retention:  # the invocation's retention end: moved to ``at``
        inv = core.store.get_invocation(timer.invocation_id)
        if inv is not None and inv.status is Status.COMPLETED:
            inv.expires_at = at
            core.store.put_invocation(inv)
    else:
        core.store.delete_timer(timer)
        core.store.add_timer(at, timer.invocation_id, timer.kind, timer.completion_id)
    core.emit(TimerSet(at))
    core.record_failure(timer.invocation_id, message)
