"""Fencing: a commit to PostgreSQL only lands while this node still owns what it writes.

``sync`` calls the store's ``Fence`` inside the commit transaction, before any write. The fence
queues statements (pipeline mode: it must not wait for their results) that fail with SQLSTATE
``PD001`` when the node no longer owns the partitions the transaction touches; the whole
transaction then rolls back and ``sync`` raises ``Fenced``: nothing of it is written.

``WriterFence`` is the single-node default: opening a store takes the store's writer epoch
(``meta.writer_epoch`` + 1), and every commit checks that it is still the current one, so a second
server started on the same database silently takes over and the first one can write nothing more.
The cluster replaces it with a check of the partitions' lease epochs.
"""

from __future__ import annotations

from typing import Any, Protocol

FENCED_SQLSTATE = "PD001"


class Fenced(Exception):
    """Another node owns (some of) what this commit writes: nothing of it was written."""


class Fence(Protocol):
    def check(self, conn: Any, partitions: frozenset[int]) -> None:
        """Queue on ``conn`` (a psycopg connection in pipeline mode, inside the commit
        transaction) the statements that fail with SQLSTATE ``PD001`` unless this node still
        owns ``partitions`` (empty: the transaction writes only cluster-wide metadata)."""
        ...


class WriterFence:
    """One writer per database: the epoch taken at open must still be the current one."""

    def __init__(self, conn: Any) -> None:
        row = conn.execute(
            "UPDATE meta SET value = (value::BIGINT + 1)::TEXT WHERE key = 'writer_epoch' "
            "RETURNING value"
        ).fetchone()
        self.epoch = int(row[0])

    def check(self, conn: Any, partitions: frozenset[int]) -> None:
        conn.execute("SELECT perdure_check_writer(%s)", (self.epoch,))
