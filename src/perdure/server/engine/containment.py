"""Containment: a transition that raised (and was rolled back) fails its own invocation only, so
nothing else waits on it (see ``Engine.run_for``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.protocol import InvocationId
from perdure.server.engine.requests import INTERNAL_ERROR
from perdure.server.records import Status

if TYPE_CHECKING:
    from perdure.server.engine.core import Core


def on_internal_error(core: Core, invocation_id: InvocationId, message: str) -> None:
    """A running invocation's attempt fails (retried per policy, visible as its last failure);
    any other is left as it is, with the failure recorded."""
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is Status.COMPLETED:
        return
    if inv.status is Status.INVOKED:
        core.on_failure(invocation_id, INTERNAL_ERROR, message)
    else:
        record_failure(core, invocation_id, message)


def record_failure(core: Core, invocation_id: InvocationId, message: str) -> None:
    inv = core.store.get_invocation(invocation_id)
    if inv is not None and inv.status is not Status.COMPLETED:
        inv.last_failure = f"[{INTERNAL_ERROR}] {message}"
        inv.modified_at = core.now()
        core.store.put_invocation(inv)


def park(core: Core, invocation_id: InvocationId, message: str) -> None:
    """The last resort when even failing an invocation raised: pause it, with the reason (an
    operator resumes it once the cause is fixed)."""
    inv = core.store.get_invocation(invocation_id)
    if inv is not None and inv.status is not Status.COMPLETED:
        inv.status = Status.PAUSED
        inv.last_failure = f"[{INTERNAL_ERROR}] {message}"
        inv.modified_at = core.now()
        core.store.put_invocation(inv)
