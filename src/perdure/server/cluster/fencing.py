"""Fencing: every store commit checks, in its own PostgreSQL transaction, that this node still
holds the leases of the partitions it writes, at the epochs it acquired them with.

``LeaseFence`` is the store's ``Fence`` (storage/postgres/fence.py) on a cluster node. Its check,
``perdure_fence`` (schema.py), share-locks those lease rows before the commit's writes. A claim by
another node updates the row, so it waits for the commit to end, and a commit after a claim sees
the new epoch: either the commit lands before the takeover (and the new owner loads it), or it
writes nothing (SQLSTATE PD001: the transaction rolls back and the store raises ``Fenced``). A
node paused past its lease (SIGSTOP, a long stall, a network cut) therefore cannot write once
resumed; its lease keeper finds the lease gone at its next tick and the node drops the partition.

The check is one statement that raises inside PostgreSQL, with no result to wait for, so it
rides in the commit's pipeline: no extra round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

FENCE_SQL = "SELECT perdure_fence(%s, %s::int[], %s::bigint[])"
NOT_HELD = -1
"""The epoch sent for a partition this node does not hold: the check fails for it."""


class LeaseFence:
    """The epochs this node may write with (changed by the node as leases come and go; read by
    the store's writer thread)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self._epochs: dict[int, int] = {}
        self._lock = threading.Lock()

    def grant(self, partition: int, epoch: int) -> None:
        """Writes to ``partition`` are ours at ``epoch`` (before acquiring it)."""
        with self._lock:
            self._epochs = {**self._epochs, partition: epoch}

    def revoke(self, partitions: Iterable[int]) -> None:
        """No more writes to these (given back or lost)."""
        gone = set(partitions)
        with self._lock:
            self._epochs = {p: e for p, e in self._epochs.items() if p not in gone}

    @property
    def epochs(self) -> dict[int, int]:
        return dict(self._epochs)

    def check(self, conn: Any, partitions: frozenset[int]) -> None:
        """Queue the check on ``conn`` inside the commit's transaction, before its writes
        (pipeline mode or not: nothing waits for a result). Empty ``partitions``: the commit
        writes cluster-wide metadata only, which any node may."""
        if not partitions:
            return
        wanted = sorted(partitions)
        epochs = self._epochs
        conn.execute(FENCE_SQL, (self.node, wanted, [epochs.get(p, NOT_HELD) for p in wanted]))
