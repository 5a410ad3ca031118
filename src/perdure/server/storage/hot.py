"""The in-memory layer over any ``Storage``: what transitions need, without a storage read.

``HotStore`` wraps a ``Storage`` and is itself one. Every write goes through to the wrapped store
(write-through, in the same batch), so the store stays the truth and recovery is unchanged; reads
of hot data are answered from memory:

* invocations that are not completed (status and record), and their complete journals;
* the holders of object locks, and the size of every inbox (an empty inbox costs no read);
* the sinks (callers and attachers) waiting for live invocations;
* the state of object/workflow keys that have a live invocation (loaded on first read);
* the timer index: every stored timer firing up to a horizon, in a heap, so the next due timer
  and the due timers need no query. Beyond ``timer_window`` timers the later ones stay in the
  store only (the horizon moves down) and are loaded when the earlier ones have fired;
* the earliest retention end of a completed invocation (its ``expires_at``), so the timer loop
  knows when to purge without a query.

Lookups of idempotency ids and workflow ids are invocation reads: a live one is in memory, a
completed one (or none) is read from the store's primary key.

Bounded: a completed invocation leaves memory (its journal and sinks with it), a key's state
leaves when the key's last live invocation does, and the timer index holds about ``timer_window``
timers however many are stored. Memory grows with live work, never with history.

Rolled-back events. Each event (``begin_event``) keeps an undo log of its changes to memory;
``end_event(keep=False)`` replays it backwards, as the store rolls back the event's writes. A
value loaded from the store during an event (which may see the event's own writes) is dropped
again on rollback.

Partitions moving. When rows change under memory (``load_partitions``/``drop_partitions`` of a
store that moves partitions, called through this layer or on the store itself), memory is loaded
again: ``reload`` (``Engine.acquire`` calls it), or before the next event when the move went
through this layer (possibly from a worker thread).
"""

from __future__ import annotations

import dataclasses
import heapq
import operator
from collections.abc import Callable, Iterable
from typing import Any

from perdure.protocol import Frame, InvocationId, MessageType
from perdure.server.records import (
    DeploymentRecord,
    Invocation,
    Result,
    ServiceRecord,
    Sink,
    Status,
    Timer,
    TimerKind,
)
from perdure.server.storage.api import Storage

TIMER_WINDOW = 2_000
"""About how many timers the index keeps in memory (the earliest ones; the next ones are loaded
in one query when these have fired). Retention ends of completed invocations are no timers
(their ``expires_at``, see ``next_expiry_at``); stores written before that hold one EXPIRE timer
per completed invocation: a wider window only costs memory."""
_FOREVER = 1 << 62
LIVE = tuple(s for s in Status if s is not Status.COMPLETED)

Key = tuple[str, str]
TimerKey = tuple[int, int]  # (pk, seq)
Undo = Callable[[], object]


_FIELDS = operator.attrgetter(*(f.name for f in dataclasses.fields(Invocation)))


_INTEGERS = operator.attrgetter(
    "created_at", "modified_at", "last_append_at", "protocol_version", "execution_time",
    "retry_count", "attempts_since_progress", "next_retry_at", "journal_len", "completed_at",
    "expires_at",
)  # fmt: skip
_I64 = 1 << 63


def _storable(inv: Invocation) -> bool:
    """Every integer of the record fits the store's 64 bits (a setting can overflow them): a
    record that does not is written at once, so that its event fails, not the commit."""
    for value in _INTEGERS(inv):
        if value is not None and not -_I64 <= value < _I64:
            return False
    result = inv.result
    return result is None or result.failure_code is None or -_I64 <= result.failure_code < _I64


def _clone(inv: Invocation) -> Invocation:
    """A copy a transition may change freely (memory keeps its own until the record is put).
    Positional, in field order: several times faster than ``copy.copy``."""
    twin = Invocation(*_FIELDS(inv))
    twin.awaiting = list(inv.awaiting)
    return twin


class HotStore:
    """A ``Storage`` that keeps the hot data of the wrapped one in memory (module docstring)."""

    def __init__(self, inner: Storage, *, timer_window: int = TIMER_WINDOW) -> None:
        self.inner = inner
        self.timer_window = timer_window
        self._undo: list[list[Undo]] = []
        self._live: dict[InvocationId, Invocation] = {}
        self._live_keys: dict[Key, int] = {}  # live keyed invocations per (service, key)
        self._journals: dict[InvocationId, list[tuple[Frame, str | None]]] = {}
        self._sinks: dict[InvocationId, list[Sink]] = {}
        self._state: dict[Key, dict[bytes, bytes]] = {}
        self._locks: dict[Key, str] = {}
        self._inbox: dict[Key, int | None] = {}  # entries; None: unknown, ask the store
        self._timers: dict[TimerKey, Timer] = {}
        self._heap: list[tuple[int, int, int]] = []  # (fire_at, seq, pk); stale entries skipped
        self._timers_of: dict[InvocationId, set[TimerKey]] = {}
        self._horizon: int | None = None  # memory holds every stored timer firing up to it
        # invocations created since memory was loaded (their journal is in memory) whose stored
        # timers memory may not all hold (one was set beyond the horizon, or the index was
        # refilled): deleting their timers asks the store
        self._timers_beyond: set[InvocationId] = set()
        # the earliest retention end of a completed invocation (``Timers.due_expiries``), when
        # known: completions lower it, a purge makes it unknown (asked again when needed)
        self._expiry: int | None = None
        self._expiry_known = False
        # live invocations whose record is written to the store at the batch's commit, once,
        # however many events of the batch put it (its Output, then its End, say)
        self._unwritten: set[InvocationId] = set()
        self._reload_pending = False  # the store's rows changed under memory (partitions moved)
        self._load()

    # -- loading -------------------------------------------------------------------------------

    def _load(self) -> None:
        """(Re)build memory from the store (outside a batch: on start and partition moves)."""
        inner = self.inner
        self._live, self._live_keys, self._journals, self._state = {}, {}, {}, {}
        self._timers_beyond = set()
        self._expiry_known = False
        for inv in inner.invocations_with_status(*LIVE):
            self._live[inv.id] = inv
            if inv.keyed:
                key = (inv.service, inv.key)
                self._live_keys[key] = self._live_keys.get(key, 0) + 1
        self._locks = {(s, k): holder for s, k, holder in inner.all_locks()}
        self._inbox = {(s, k): n for s, k, n in inner.inbox_sizes()}
        self._sinks = {}
        for invocation_id, sink in inner.all_sinks():
            self._sinks.setdefault(invocation_id, []).append(sink)
        self._refill_timers()

    def reload(self) -> None:
        """The store's rows changed under memory (partitions loaded or dropped through another
        connection): load memory again. Between events only (an open batch is fine: memory
        reflects its writes, as the store's connection does)."""
        if self._undo:
            raise RuntimeError("reloading the in-memory layer inside an event")
        self._reload_pending = False
        self._write_unwritten()
        self._load()

    def _reload_if_pending(self) -> None:
        if self._reload_pending and not self._undo:
            self.reload()

    def load_partitions(self, partitions: Iterable[int]) -> None:
        """Forwarded (blocking, possibly in a worker thread); memory reloads on the engine's
        thread before its next event (``Engine.acquire`` reloads it at once)."""
        self._forward_partitions("load_partitions", partitions)

    def drop_partitions(self, partitions: Iterable[int]) -> None:
        self._forward_partitions("drop_partitions", partitions)

    def _forward_partitions(self, name: str, partitions: Iterable[int]) -> None:
        getattr(self.inner, name)(partitions)
        self._reload_pending = True

    def memory_sizes(self) -> dict[str, int]:
        """How many entries each in-memory map holds (for boundedness checks and the soak)."""
        return {
            "invocations": len(self._live),
            "live_keys": len(self._live_keys),
            "journals": len(self._journals),
            "sinks": len(self._sinks),
            "state": len(self._state),
            "locks": len(self._locks),
            "inboxes": len(self._inbox),
            "timers": len(self._timers),
            "timer_heap": len(self._heap),
            "timers_of": len(self._timers_of),
        }

    # -- batches and the undo log --------------------------------------------------------------

    @property
    def in_batch(self) -> bool:
        return self.inner.in_batch

    @property
    def needs_sync(self) -> bool:
        return self.inner.needs_sync

    def begin_event(self) -> None:
        self._reload_if_pending()
        self.inner.begin_event()
        self._undo.append([])

    def end_event(self, *, keep: bool) -> None:
        self.inner.end_event(keep=keep)
        log = self._undo.pop()
        if keep:
            if self._undo:  # a nested event: its changes go with the enclosing one
                self._undo[-1].extend(log)
            return
        for undo in reversed(log):
            undo()

    def _on_undo(self, undo: Undo) -> None:
        if self._undo:
            self._undo[-1].append(undo)

    def commit(self) -> bool:
        self._write_unwritten()
        committed = self.inner.commit()
        if len(self._timers) > 2 * self.timer_window or len(self._heap) > 4 * self.timer_window:
            self._refill_timers()  # keep the index bounded (outside any event: no undo)
        if len(self._timers_beyond) > self.timer_window:  # keep only the live ones
            self._timers_beyond = {i for i in self._timers_beyond if i in self._journals}
        return committed

    def sync(self) -> None:
        self.inner.sync()

    def close(self) -> None:
        self.inner.close()

    def query(
        self, sql: str, *, live: Iterable[str] = (), timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        return self.inner.query(sql, live=live, timeout=timeout)

    # -- invocations ---------------------------------------------------------------------------

    def get_invocation(self, invocation_id: InvocationId) -> Invocation | None:
        inv = self._live.get(invocation_id)
        if inv is not None:
            return _clone(inv)
        return self.inner.get_invocation(invocation_id)  # completed, or none

    def put_invocation(self, inv: Invocation) -> None:
        invocation_id = inv.id
        if inv.status is Status.COMPLETED or not self._undo or not _storable(inv):
            self.inner.put_invocation(inv)  # now (a value the store refuses raises here)
        else:  # live, in an event: written once at the commit (memory answers until then)
            self._unwritten.add(invocation_id)
        before = self._live.get(invocation_id)
        if inv.status is Status.COMPLETED:
            if before is not None:
                self._leave(before, completed=True)
            if self._expiry_known and inv.expires_at is not None:
                earliest = self._expiry
                if earliest is None or inv.expires_at < earliest:
                    self._expiry = inv.expires_at
                    self._on_undo(lambda: setattr(self, "_expiry", earliest))
        else:
            # the record itself: a transition puts a record after its last change to it
            self._live[invocation_id] = inv
            if before is None:
                self._count_key(inv, +1)
            self._on_undo(lambda: self._restore(invocation_id, before))

    def _write_unwritten(self) -> None:
        """Write the records of live invocations put since the last commit (outside events).
        One that left meanwhile (completed or deleted) was written or deleted by then; one
        whose change was rolled back is written as it is now, which the store may already hold.
        """
        if self._unwritten:
            for invocation_id in self._unwritten:
                inv = self._live.get(invocation_id)
                if inv is not None:
                    self.inner.put_invocation(inv)
            self._unwritten.clear()

    def _restore(self, invocation_id: InvocationId, before: Invocation | None) -> None:
        """Undo of a put that kept ``invocation_id`` live (it was ``before``)."""
        if before is None:
            gone = self._live.pop(invocation_id)
            self._count_key(gone, -1)
        else:
            self._live[invocation_id] = before

    def _leave(self, inv: Invocation, *, completed: bool) -> None:
        """``inv`` completed or was deleted: it and its journal leave memory; its sinks too
        (those of a completed one once taken, see ``take_sinks``)."""
        invocation_id = inv.id
        del self._live[invocation_id]
        journal = self._journals.pop(invocation_id, None)
        sinks = self._sinks.pop(invocation_id, None)
        if completed:  # its sinks are taken next: memory knows whether there are any
            self._sinks[invocation_id] = [] if sinks is None else sinks
        self._count_key(inv, -1)

        def undo() -> None:
            self._live[invocation_id] = inv
            self._count_key(inv, +1)
            if journal is not None:
                self._journals[invocation_id] = journal
            self._put_sinks(invocation_id, sinks, log=False)

        self._on_undo(undo)

    def _count_key(self, inv: Invocation, delta: int) -> None:
        if not inv.keyed:
            return
        key = (inv.service, inv.key)
        count = self._live_keys.get(key, 0) + delta
        if count > 0:
            self._live_keys[key] = count
        else:  # the key's last live invocation left: so does its state
            self._live_keys.pop(key, None)
            self._state.pop(key, None)

    def delete_invocation(self, invocation_id: InvocationId) -> None:
        self.inner.delete_invocation(invocation_id)  # its journal, sinks and timers too
        self._expiry_known = False  # it may have been the earliest retention end
        inv = self._live.get(invocation_id)
        if inv is not None:
            self._leave(inv, completed=False)
        self._put_sinks(invocation_id, None)  # the store deleted them
        self._forget_timers(invocation_id, None)

    def invocations_with_status(self, *statuses: Status) -> list[Invocation]:
        if Status.COMPLETED in statuses:
            self._write_unwritten_now()
            return self.inner.invocations_with_status(*statuses)
        return [_clone(inv) for inv in self._live.values() if inv.status in statuses]

    def list_invocations(self, limit: int = 1000, status: str | None = None) -> list[Invocation]:
        self._write_unwritten_now()
        return self.inner.list_invocations(limit, status)

    def _write_unwritten_now(self) -> None:
        """Before a query of the store's invocations: the records it would miss are written.
        Inside an event they stay marked (written again at the commit), as the event's rollback
        would take the rows written now back with it."""
        if self._unwritten:
            marked = set(self._unwritten)
            self._write_unwritten()
            if self._undo:
                self._unwritten = marked

    # -- journals ------------------------------------------------------------------------------

    def append_journal(
        self, inv: Invocation, frame: Frame, now: int, notification: str | None = None
    ) -> int:
        invocation_id = inv.id
        empty = inv.journal_len == 0  # a new invocation: its whole journal is known from here
        index = self.inner.append_journal(inv, frame, now, notification)
        journal = self._journals.get(invocation_id)
        if journal is None and empty:
            self._journals[invocation_id] = [(frame, notification)]
            self._on_undo(lambda: self._journals.pop(invocation_id, None))
        elif journal is not None:
            journal.append((frame, notification))
            self._on_undo(journal.pop)
        return index

    def _journal(self, invocation_id: InvocationId) -> list[tuple[Frame, str | None]] | None:
        """The whole journal, when memory has it: that of an invocation created since memory
        was loaded and not completed yet (others are read from the store)."""
        return self._journals.get(invocation_id)

    def read_journal(self, invocation_id: InvocationId) -> list[Frame]:
        journal = self._journal(invocation_id)
        if journal is None:
            return self.inner.read_journal(invocation_id)
        return [frame for frame, _ in journal]

    def read_journal_of_type(self, invocation_id: InvocationId, kind: MessageType) -> list[Frame]:
        journal = self._journal(invocation_id)
        if journal is None:
            return self.inner.read_journal_of_type(invocation_id, kind)
        return [frame for frame, _ in journal if frame.type == kind]

    def has_notification(self, invocation_id: InvocationId, keys: Iterable[str]) -> bool:
        journal = self._journal(invocation_id)
        if journal is None:
            return self.inner.has_notification(invocation_id, keys)
        wanted = set(keys)
        return any(key in wanted for _, key in journal if key is not None)

    # -- sinks ---------------------------------------------------------------------------------

    def add_sink(self, invocation_id: InvocationId, sink: Sink) -> None:
        self.inner.add_sink(invocation_id, sink)
        sinks = self._sinks.setdefault(invocation_id, [])
        if sink in sinks:  # the store replaces the same row
            return
        sinks.append(sink)

        def undo() -> None:
            sinks.remove(sink)
            if not sinks and self._sinks.get(invocation_id) is sinks:
                del self._sinks[invocation_id]

        self._on_undo(undo)

    def _put_sinks(
        self, invocation_id: InvocationId, sinks: list[Sink] | None, *, log: bool = True
    ) -> None:
        before = self._sinks.get(invocation_id)
        if sinks is None:
            self._sinks.pop(invocation_id, None)
        else:
            self._sinks[invocation_id] = sinks
        if log and before is not sinks:
            self._on_undo(lambda: self._put_sinks(invocation_id, before, log=False))

    def take_sinks(self, invocation_id: InvocationId) -> list[Sink]:
        sinks = self._sinks.get(invocation_id)
        if sinks is None and invocation_id not in self._live:
            return self.inner.take_sinks(invocation_id)  # not known to memory
        self._put_sinks(invocation_id, None)
        if not sinks:
            return []  # memory holds every sink of a live (or just completed) invocation
        return self.inner.take_sinks(invocation_id)  # the store's rows are the answer

    def callees_of(self, caller: InvocationId, notification_type: int) -> list[InvocationId]:
        return self.inner.callees_of(caller, notification_type)

    # -- state ---------------------------------------------------------------------------------

    def _cached_state(self, service: str, key: str) -> dict[bytes, bytes] | None:
        """The key's state from memory; loaded now when the key has a live invocation."""
        pair = (service, key)
        state = self._state.get(pair)
        if state is not None or pair not in self._live_keys:
            return state
        state = dict(self.inner.get_state(service, key))
        self._state[pair] = state
        self._on_undo(lambda: self._state.pop(pair, None))
        return state

    def get_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        state = self._cached_state(service, key)
        if state is None:
            return self.inner.get_state(service, key)
        return sorted(state.items())

    def get_state_value(self, service: str, key: str, state_key: bytes) -> bytes | None:
        state = self._cached_state(service, key)
        if state is None:
            return self.inner.get_state_value(service, key, state_key)
        return state.get(state_key)

    def _edit_state(
        self, service: str, key: str, edit: Callable[[dict[bytes, bytes]], object]
    ) -> None:
        pair = (service, key)
        state = self._state.get(pair)
        if state is None:
            return
        before = dict(state)
        edit(state)

        def undo() -> None:
            current = self._state.get(pair)
            if current is not None:
                current.clear()
                current.update(before)

        self._on_undo(undo)

    def set_state(self, service: str, key: str, state_key: bytes, value: bytes) -> None:
        self.inner.set_state(service, key, state_key, value)
        self._edit_state(service, key, lambda s: s.__setitem__(state_key, value))

    def clear_state(self, service: str, key: str, state_key: bytes) -> None:
        self.inner.clear_state(service, key, state_key)
        self._edit_state(service, key, lambda s: s.pop(state_key, None))

    def clear_all_state(self, service: str, key: str) -> None:
        self.inner.clear_all_state(service, key)
        self._edit_state(service, key, lambda s: s.clear())

    # -- locks and inboxes ---------------------------------------------------------------------

    def lock_holder(self, service: str, key: str) -> str | None:
        return self._locks.get((service, key))

    def take_lock(self, service: str, key: str, invocation_id: InvocationId) -> None:
        self.inner.take_lock(service, key, invocation_id)
        self._set_lock((service, key), str(invocation_id))

    def release_lock(self, service: str, key: str) -> None:
        self.inner.release_lock(service, key)
        self._set_lock((service, key), None)

    def _set_lock(self, pair: Key, holder: str | None) -> None:
        before = self._locks.get(pair)
        self._put(self._locks, pair, holder)
        self._on_undo(lambda: self._put(self._locks, pair, before))

    @staticmethod
    def _put(mapping: dict[Key, Any], pair: Key, value: Any) -> None:
        if value is None:
            mapping.pop(pair, None)
        else:
            mapping[pair] = value

    def _set_inbox(self, pair: Key, size: int | None) -> None:
        before = self._inbox.get(pair, 0)
        if size == 0:
            self._inbox.pop(pair, None)
        else:
            self._inbox[pair] = size
        self._on_undo(lambda: self._set_inbox_raw(pair, before))

    def _set_inbox_raw(self, pair: Key, size: int | None) -> None:
        if size == 0:
            self._inbox.pop(pair, None)
        else:
            self._inbox[pair] = size

    def _grow_inbox(self, pair: Key) -> None:
        size = self._inbox.get(pair, 0)
        self._set_inbox(pair, None if size is None else size + 1)

    def push_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None:
        self.inner.push_inbox(service, key, invocation_id)
        self._grow_inbox((service, key))

    def pop_inbox(self, service: str, key: str) -> str | None:
        pair = (service, key)
        size = self._inbox.get(pair, 0)
        if size == 0:
            return None  # known empty: no read
        entry = self.inner.pop_inbox(service, key)
        if entry is None:
            self._set_inbox(pair, 0)
        else:
            self._set_inbox(pair, None if size is None else size - 1)
        return entry

    def remove_from_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None:
        self.inner.remove_from_inbox(service, key, invocation_id)
        pair = (service, key)
        if self._inbox.get(pair, 0) != 0:
            self._set_inbox(pair, None)  # whether it was there is the store's to say

    def queue_state_edit(
        self, service: str, key: str, new_state: str, version: str | None, prefix: str
    ) -> None:
        self.inner.queue_state_edit(service, key, new_state, version, prefix)
        self._grow_inbox((service, key))

    def take_state_edit(self, key: str, seq: int) -> tuple[str, str, str, str | None] | None:
        return self.inner.take_state_edit(key, seq)

    # -- timers --------------------------------------------------------------------------------

    def _add_timer(self, timer: Timer) -> None:
        tk = (timer.pk, timer.seq)
        self._timers[tk] = timer
        heapq.heappush(self._heap, (timer.fire_at, timer.seq, timer.pk))
        self._timers_of.setdefault(timer.invocation_id, set()).add(tk)

    def _drop_timer(self, tk: TimerKey) -> Timer | None:
        timer = self._timers.pop(tk, None)
        if timer is not None:
            of = self._timers_of.get(timer.invocation_id)
            if of is not None:
                of.discard(tk)
                if not of:
                    del self._timers_of[timer.invocation_id]
        return timer  # its heap entry goes stale and is skipped

    def _refill_timers(self) -> None:
        """Load the earliest ``timer_window`` timers from the store into a fresh index."""
        before = (self._timers, self._heap, self._timers_of, self._horizon)
        # timers memory held may be left out now: their invocations' timers are the store's to
        # list from here on (kept so on rollback too: only a store read more)
        self._timers_beyond.update(i for i in self._timers_of if i in self._journals)
        self._timers, self._heap, self._timers_of = {}, [], {}
        loaded = self.inner.due_timers(_FOREVER, self.timer_window + 1)
        if len(loaded) <= self.timer_window:
            self._horizon = None
        else:
            self._horizon = loaded[self.timer_window].fire_at - 1
            loaded = [t for t in loaded if t.fire_at <= self._horizon]
        for timer in loaded:
            self._add_timer(timer)

        def undo() -> None:
            self._timers, self._heap, self._timers_of, self._horizon = before

        self._on_undo(undo)

    def add_timer(
        self,
        fire_at: int,
        invocation_id: InvocationId,
        kind: TimerKind,
        completion_id: int | None = None,
    ) -> Timer:
        timer = self.inner.add_timer(fire_at, invocation_id, kind, completion_id)
        if self._horizon is None or fire_at <= self._horizon:
            self._add_timer(timer)
            self._on_undo(lambda: self._drop_timer((timer.pk, timer.seq)))
        else:  # stored only (kept so on rollback too: only a store read more)
            self._timers_beyond.add(invocation_id)
        return timer

    def _valid(self, entry: tuple[int, int, int]) -> bool:
        timer = self._timers.get((entry[2], entry[1]))
        return timer is not None and timer.fire_at == entry[0]

    def due_expiries(self, now: int, limit: int = 1000) -> list[Timer]:
        expiry = self.next_expiry_at()
        if expiry is None or expiry > now:
            return []  # known: none due, no query
        return self.inner.due_expiries(now, limit)

    def next_expiry_at(self) -> int | None:
        if not self._expiry_known:
            self._expiry = self.inner.next_expiry_at()
            self._expiry_known = True
        return self._expiry

    def due_timers(self, now: int, limit: int = 1000) -> list[Timer]:
        if self._horizon is not None and now > self._horizon:
            self._refill_timers()
            if self._horizon is not None and now > self._horizon:  # more due than the window
                return self.inner.due_timers(now, limit)
        heap = self._heap
        due: list[Timer] = []
        taken: list[tuple[int, int, int]] = []
        seen: set[TimerKey] = set()
        while heap and heap[0][0] <= now and len(due) < limit:
            entry = heapq.heappop(heap)
            tk = (entry[2], entry[1])
            if tk in seen or not self._valid(entry):
                continue  # a stale or repeated entry: dropped for good
            seen.add(tk)
            due.append(self._timers[tk])
            taken.append(entry)
        for entry in taken:
            heapq.heappush(heap, entry)
        return due

    def _first_fire_at(self) -> int | None:
        heap = self._heap
        while heap and not self._valid(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def next_timer_at(self, kinds: Iterable[TimerKind] | None = None) -> int | None:
        self._reload_if_pending()
        if kinds is not None:
            wanted = set(kinds)
            found = [t.fire_at for t in self._timers.values() if t.kind in wanted]
            if found:
                return min(found)
            return None if self._horizon is None else self.inner.next_timer_at(wanted)
        first = self._first_fire_at()
        if first is not None or self._horizon is None:
            return first
        self._refill_timers()  # every timer in memory fired: load the next ones
        first = self._first_fire_at()
        return first if first is not None else self.inner.next_timer_at()

    def delete_timer(self, timer: Timer) -> None:
        self.inner.delete_timer(timer)
        dropped = self._drop_timer((timer.pk, timer.seq))
        if dropped is not None:
            self._on_undo(lambda: self._add_timer(dropped))

    def delete_timers_of(self, invocation_id: InvocationId, kind: TimerKind | None = None) -> None:
        if invocation_id in self._journals and invocation_id not in self._timers_beyond:
            # memory holds every stored timer of this invocation: delete those by their keys
            # (usually none: completing an invocation then costs no store query)
            for tk in list(self._timers_of.get(invocation_id, ())):
                timer = self._timers[tk]
                if kind is None or timer.kind is kind:
                    self.delete_timer(timer)
            return
        self.inner.delete_timers_of(invocation_id, kind)
        self._forget_timers(invocation_id, kind)

    def _forget_timers(self, invocation_id: InvocationId, kind: TimerKind | None) -> None:
        keys = self._timers_of.get(invocation_id)
        if not keys:
            return
        dropped = [
            t
            for tk in list(keys)
            if (kind is None or self._timers[tk].kind is kind)
            and (t := self._drop_timer(tk)) is not None
        ]
        if dropped:

            def undo() -> None:
                for timer in dropped:
                    self._add_timer(timer)

            self._on_undo(undo)

    # -- idempotency, promises, deployments: straight to the store ------------------------------

    def put_idempotency(
        self, service: str, key: str, handler: str, idem_key: str, invocation_id: InvocationId
    ) -> None:
        self.inner.put_idempotency(service, key, handler, idem_key, invocation_id)

    def delete_idempotency(self, invocation_id: InvocationId) -> None:
        self.inner.delete_idempotency(invocation_id)

    def get_promise(self, service: str, key: str, name: str) -> Result | None:
        return self.inner.get_promise(service, key, name)

    def complete_promise(self, service: str, key: str, name: str, result: Result) -> None:
        self.inner.complete_promise(service, key, name, result)

    def add_promise_listener(
        self, service: str, key: str, name: str, invocation_id: InvocationId, cid: int
    ) -> None:
        self.inner.add_promise_listener(service, key, name, invocation_id, cid)

    def take_promise_listeners(
        self, service: str, key: str, name: str
    ) -> list[tuple[InvocationId, int]]:
        return self.inner.take_promise_listeners(service, key, name)

    def clear_promises(self, service: str, key: str) -> None:
        self.inner.clear_promises(service, key)

    def put_deployment(self, d: DeploymentRecord) -> None:
        self.inner.put_deployment(d)

    def delete_deployment(self, deployment_id: str) -> None:
        self.inner.delete_deployment(deployment_id)

    def list_deployments(self) -> list[DeploymentRecord]:
        return self.inner.list_deployments()

    def put_service(self, s: ServiceRecord) -> None:
        self.inner.put_service(s)

    def delete_service(self, name: str) -> None:
        self.inner.delete_service(name)

    def list_services(self) -> list[ServiceRecord]:
        return self.inner.list_services()

    # -- partitions and the messages between them: straight to the store -----------------------

    def partition_count(self, requested: int | None, default: int) -> int:
        return self.inner.partition_count(requested, default)

    def next_outbox_seq(self, source_pk: int) -> int:
        return self.inner.next_outbox_seq(source_pk)

    def add_outbox(self, source_pk: int, seq: int, target: int, message: bytes) -> None:
        self.inner.add_outbox(source_pk, seq, target, message)

    def read_outbox(
        self, source_pk: int, target: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        return self.inner.read_outbox(source_pk, target)

    def delete_outbox(self, source_pk: int, seqs: Iterable[int]) -> None:
        self.inner.delete_outbox(source_pk, seqs)

    def dedup_seq(self, pk: int, source: int) -> int:
        return self.inner.dedup_seq(pk, source)

    def set_dedup_seq(self, pk: int, source: int, seq: int) -> None:
        self.inner.set_dedup_seq(pk, source, seq)

    # -- whole tables of live data -------------------------------------------------------------

    def all_locks(self) -> list[tuple[str, str, str]]:
        return [(s, k, holder) for (s, k), holder in self._locks.items()]

    def inbox_sizes(self) -> list[tuple[str, str, int]]:
        return self.inner.inbox_sizes()

    def all_sinks(self) -> list[tuple[InvocationId, Sink]]:
        return self.inner.all_sinks()
