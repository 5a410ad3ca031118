"""Delivering notifications: append one to an invocation's journal, then forward it into the live
attempt, resume the suspended invocation that waits for it, or keep it for the next attempt.
Signals (awakeables, named signals, cancel) arrive here too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import Frame, InvocationId
from perdure.server.engine import notifications as note
from perdure.server.engine import outbox
from perdure.server.engine.effects import Forward
from perdure.server.engine.messages import NotifyMessage, SignalMessage
from perdure.server.records import Result, Status

if TYPE_CHECKING:
    from perdure.server.engine.core import Core


def notify(
    core: Core, invocation_id: InvocationId, frame: Frame, key: str, *, progress: bool = False
) -> None:
    """Append a notification to an invocation's journal and act on it.

    Dropped when the invocation is gone or completed; signals are de-duplicated per id. An
    invocation of a partition owned elsewhere gets it as a message.
    """
    if not core.owns(invocation_id.partition_key):
        body = NotifyMessage(invocation_id, int(frame.type), frame.payload, key)
        outbox.send(core, invocation_id.partition_key, body)
        return
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is Status.COMPLETED:
        return
    if key[0] in "sn" and core.store.has_notification(invocation_id, [key]):
        return
    frame = note.for_protocol(frame, inv.protocol_version)
    core.store.append_journal(inv, frame, core.now(), key)
    if progress:
        inv.attempts_since_progress = 0
    if inv.status is Status.INVOKED:
        core.store.put_invocation(inv)
        core.emit(Forward(inv.id, frame))
    elif (inv.status is Status.SUSPENDED and key in inv.awaiting) or (
        inv.status is Status.PAUSED and key == "s1"
    ):
        core._start(inv)
    else:
        core.store.put_invocation(inv)


def signal(
    core: Core,
    invocation_id: InvocationId,
    *,
    index: int | None = None,
    name: str | None = None,
    result: Result | None = None,
) -> None:
    """Deliver a signal (awakeable completion, named signal); index 1 is cancel."""
    if not core.owns(invocation_id.partition_key):
        body = SignalMessage(invocation_id, index, name, result)
        outbox.send(core, invocation_id.partition_key, body)
        return
    if index == 1:
        core.cancel(invocation_id)
        return
    notify(core, invocation_id, *note.signal(index, name, result))
