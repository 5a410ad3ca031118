"""The row changes a store has applied but not yet shipped to a remote store (PostgreSQL).

The SQLite store runs as a node-local working copy; every write it makes is also recorded here
as the row's final image (or its deletion), keyed by ``(table, primary key)``. So coalescing is
free: several puts of one row in a batch ship as the last one, and a row inserted and deleted
before it was shipped ships as nothing.

Three stages, each a dict ``(table, key) -> Change``:
* the open batch (the engine's event loop only); each event can be undone on its own (an undo
  log with a mark per event), the whole batch with ``discard``;
* committed batches not shipped yet: ``commit`` merges the open batch into them;
* ``take`` (the writer thread) hands all committed changes to the shipper at once; if shipping
  fails, ``restore`` puts them back under the newer ones.

A row is a tuple in its table's column order whose first ``KEY_LENGTHS[table]`` values are its
primary key.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

KEY_LENGTHS: dict[str, int] = {
    "invocations": 2,
    "journal": 3,
    "state": 4,
    "locks": 3,
    "inbox": 4,
    "timers": 2,
    "sinks": 4,
    "idempotency": 5,
    "promises": 4,
    "promise_listeners": 6,
    "state_edits": 2,
    "outbox": 2,
    "outbox_seq": 1,
    "dedup": 2,
    "deployments": 1,
    "services": 1,
}
"""Each replicated table's primary-key length: its first columns (see schema.py)."""

UNPARTITIONED = frozenset({"deployments", "services"})
"""Cluster-wide tables: no ``pk`` column, owned by no partition."""

Row = tuple[Any, ...]
Key = tuple[str, Row]


@dataclass(slots=True, frozen=True)
class Change:
    row: Row | None
    """The row's final image; None: deleted."""
    fresh: bool
    """The row did not exist in the remote store before this change: a deletion of it can be
    dropped instead of shipped."""


class OpLog:
    def __init__(self) -> None:
        self._open: dict[Key, Change] = {}
        self._undo: list[tuple[Key, Change | None]] = []
        self._marks: list[int] = []
        self._committed: dict[Key, Change] = {}
        self._lock = threading.Lock()

    # -- recording (the engine's thread) --------------------------------------------------------

    def put(self, table: str, row: Row, *, fresh: bool = False) -> None:
        """``row`` was written (``fresh``: by a plain INSERT, so it did not exist before)."""
        key = (table, row[: KEY_LENGTHS[table]])
        prev = self._open.get(key)
        if self._marks:
            self._undo.append((key, prev))
        self._open[key] = Change(row, fresh if prev is None else prev.fresh)

    def delete(self, table: str, key_values: Row) -> None:
        """The row with this primary key was deleted (if it existed)."""
        key = (table, key_values)
        prev = self._open.get(key)
        if self._marks:
            self._undo.append((key, prev))
        if prev is not None and prev.fresh:
            del self._open[key]
        else:
            self._open[key] = Change(None, False)

    def begin_event(self) -> None:
        self._marks.append(len(self._undo))

    def end_event(self, *, keep: bool) -> None:
        mark = self._marks.pop()
        if not keep:
            while len(self._undo) > mark:
                key, prev = self._undo.pop()
                if prev is None:
                    self._open.pop(key, None)
                else:
                    self._open[key] = prev
        if not self._marks:
            self._undo.clear()

    def discard(self) -> None:
        """The open batch was rolled back."""
        self._open.clear()
        self._undo.clear()
        self._marks.clear()

    def commit(self) -> None:
        """The open batch was committed: its changes wait for ``take``."""
        if not self._open:
            return
        with self._lock:
            _merge(self._committed, self._open)
        self._open = {}
        self._undo.clear()

    # -- shipping (the writer thread) -------------------------------------------------------------

    def take(self) -> dict[Key, Change]:
        """Every committed change not taken yet (the caller ships them, or ``restore``s them)."""
        with self._lock:
            taken, self._committed = self._committed, {}
        return taken

    def restore(self, taken: dict[Key, Change]) -> None:
        """Shipping ``taken`` failed: keep them for the next attempt, under the newer changes.
        Whether the failed transaction committed is unknown, so none counts as fresh."""
        with self._lock:
            older = {key: Change(c.row, False) for key, c in taken.items()}
            for key, change in self._committed.items():
                older[key] = Change(change.row, False)
            self._committed = older

    def forget(self, keep: Any) -> int:
        """Drop the committed changes whose key ``keep(table, key)`` rejects (partitions this node
        no longer owns); returns how many were dropped."""
        with self._lock:
            before = len(self._committed)
            self._committed = {k: c for k, c in self._committed.items() if keep(*k)}
            return before - len(self._committed)

    @property
    def pending(self) -> int:
        """How many committed changes wait to be shipped."""
        return len(self._committed)


def _merge(into: dict[Key, Change], newer: dict[Key, Change]) -> None:
    for key, change in newer.items():
        prev = into.get(key)
        fresh = change.fresh if prev is None else prev.fresh
        if change.row is None and fresh:
            into.pop(key, None)
        else:
            into[key] = Change(change.row, fresh)
