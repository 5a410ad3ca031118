"""Detecting request-response cycles between exclusive handlers (a deadlock Restate leaves silent).

The wait-for graph has an edge X -> Y when X cannot finish before Y does:
* X called or attached to Y and waits for its result (a sink of Y names X as caller);
* X is queued in the inbox of an object key whose lock Y holds.

A cycle in this graph never resolves by itself: A/k calls B/k, B/k calls A/k, and the second A/k
call waits behind the first in A/k's inbox. Only cancelling (or killing) one member breaks it.
A cycle can only close when an edge is added, i.e. when an invocation calls or attaches, so the
engine checks from the caller at that moment; the admin API checks again when it lists
invocations, so the report disappears once the cycle is broken.

The walk reads the store through ``WaitGraph``, which keeps this module free of SQL.
"""

from __future__ import annotations

from collections.abc import Sequence

from perdure.protocol import InvocationId, MessageType
from perdure.server.records import Invocation, Status
from perdure.server.storage import Storage

MAX_WALK = 10_000
"""Nodes visited at most per check: a bound for pathological graphs, far above real chains."""

WAITING_NOTIFICATIONS = (MessageType.CALL_COMPLETION, MessageType.ATTACH_INVOCATION_COMPLETION)


class WaitGraph:
    """The wait-for edges of the invocations in a store."""

    def __init__(self, store: Storage) -> None:
        self.store = store

    def invocation(self, invocation_id: InvocationId) -> Invocation | None:
        return self.store.get_invocation(invocation_id)

    def waits_for(self, inv: Invocation) -> list[InvocationId]:
        if inv.status is Status.COMPLETED:
            return []
        edges = [
            callee
            for kind in WAITING_NOTIFICATIONS
            for callee in self.store.callees_of(inv.id, kind)
        ]
        if inv.status is Status.INBOXED and inv.exclusive:
            holder = self.store.lock_holder(inv.service, inv.key)
            if holder is not None and holder != str(inv.id):
                edges.append(InvocationId.parse(holder))
        return edges


def find_cycle(start: InvocationId, graph: WaitGraph) -> list[Invocation] | None:
    """The invocations of a wait-for cycle through ``start`` (in waiting order, ``start``
    first), or None when ``start`` is on no cycle."""
    first = graph.invocation(start)
    if first is None:
        return None
    path: list[Invocation] = [first]
    on_path: set[InvocationId] = {start}
    seen: set[InvocationId] = {start}
    stack: list[list[InvocationId]] = [graph.waits_for(first)]
    while stack:
        if not stack[-1]:
            stack.pop()
            on_path.discard(path.pop().id)
            continue
        nxt = stack[-1].pop()
        if nxt == start:
            return list(path)
        if nxt in seen or len(seen) >= MAX_WALK:
            continue
        inv = graph.invocation(nxt)
        if inv is None:
            continue
        seen.add(nxt)
        path.append(inv)
        on_path.add(nxt)
        stack.append(graph.waits_for(inv))
    return None


def describe_cycle(cycle: Sequence[Invocation]) -> str:
    """One line naming every member, e.g. ``deadlock: A/k/run (inv_a) waits for B/k/run (inv_b),
    which waits for A/k/run (inv_c), which is queued behind A/k/run (inv_a)``."""
    text = f"deadlock: {cycle[0].target} ({cycle[0].id})"
    for n, (waiter, holder) in enumerate(zip(cycle, [*cycle[1:], cycle[0]], strict=True)):
        verb = "is queued behind" if waiter.status is Status.INBOXED else "waits for"
        text += f"{', which' if n else ''} {verb} {holder.target} ({holder.id})"
    return text
