"""Fencing: every store commit checks, in its own PostgreSQL transaction, that this node still
holds the leases of the partitions it writes, at the epochs it acquired them with.

The check (``perdure_fence``, schema.py) share-locks those lease rows before the commit's writes.
A claim by another node updates the row, so it waits for the commit to end, and a commit after a
claim sees the new epoch: either the commit lands before the takeover (and the new owner loads
it), or it writes nothing (``Fenced``: the check raises, the transaction is rolled back). A node
paused past its lease (SIGSTOP, a long stall, a network cut) therefore cannot write once resumed.

The check is one statement that raises inside PostgreSQL, with no result to wait for, so it
rides in the commit's pipeline: no extra round trip.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from perdure.server.cluster.schema import FENCED_SQLSTATE

FENCE_SQL = "SELECT perdure_fence(%s, %s::int[], %s::bigint[])"


class Fenced(Exception):
    """This node no longer holds the lease of a partition it tried to write; nothing of the
    commit was written."""

    def __init__(self, lost: set[int], detail: str) -> None:
        super().__init__(f"fenced: lost the lease of partitions {sorted(lost)} ({detail})")
        self.lost = lost


class LeaseFence:
    """The epochs this node may write with. ``check`` is the store's commit hook."""

    def __init__(self, node: str, on_fenced: Callable[[set[int]], None] | None = None) -> None:
        self.node = node
        self.on_fenced = on_fenced
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

    def check(self, cursor: Any, partitions: Iterable[int]) -> None:
        """Queue the fence in the commit's transaction, before its writes (``cursor``: a psycopg
        cursor or connection, pipeline mode or not). A partition this node never acquired is
        refused here, without asking PostgreSQL; a lease that moved on makes the transaction
        fail with SQLSTATE ``PF001`` (``fenced`` turns it into ``Fenced``)."""
        wanted = sorted(set(partitions))
        if not wanted:
            return
        epochs = self._epochs
        missing = {p for p in wanted if p not in epochs}
        if missing:
            self._lost(missing)
            raise Fenced(missing, "not acquired by this node")
        cursor.execute(FENCE_SQL, (self.node, wanted, [epochs[p] for p in wanted]))

    def fenced(self, exc: BaseException) -> Fenced | None:
        """The ``Fenced`` error a failed commit stands for (None: it failed for another reason).
        Tells ``on_fenced`` which partitions were lost."""
        if getattr(exc, "sqlstate", None) != FENCED_SQLSTATE:
            return None
        diag = getattr(exc, "diag", None)
        detail = str(getattr(diag, "message_detail", "") or "")
        lost = {int(item.split(":", 1)[0]) for item in detail.split(",") if ":" in item}
        self._lost(lost)
        return Fenced(lost, detail)

    def _lost(self, partitions: set[int]) -> None:
        if self.on_fenced is not None:
            self.on_fenced(partitions)
