"""What the engine needs from durable storage, grouped by concern (``Storage`` is all of them).

The engine is the only user of a ``Storage``: the APIs, the invoker, introspection, the test
harness and dev mode ask the engine, never the store. Nothing outside ``storage/`` knows that the
store speaks SQL (a test enforces it), so another backend only has to implement these Protocols.

Batches. Writes collect in an open batch (``begin_event`` opens it); each event of the batch is
undone on its own when its transition fails (``end_event(keep=False)``). ``commit`` ends the batch:
its writes become visible to every later read of the engine, and ``sync`` (called from the
engine's writer thread, never the event loop) makes every committed batch durable. Reads of the
engine see the writes of the open batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

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


class Batches(Protocol):
    """The batch/transaction API."""

    @property
    def in_batch(self) -> bool:
        """A batch is open (writes applied, not committed yet)."""
        ...

    def begin_event(self) -> None:
        """Start one event's writes (opening a batch if none is open)."""
        ...

    def end_event(self, *, keep: bool) -> None:
        """Keep the event's writes in the batch, or undo them (its transition failed)."""
        ...

    @property
    def needs_sync(self) -> bool:
        """``sync`` does real work: committed batches are not durable until it returns (False
        when the store never syncs, e.g. ``synchronous=OFF`` in tests)."""
        ...

    def commit(self) -> bool:
        """End the open batch; True when there was one. Cheap: durability is ``sync``'s job."""
        ...

    def sync(self) -> None:
        """Make every committed batch durable (fsync). Blocking; safe in another thread while
        the engine applies and commits further batches."""
        ...

    def close(self) -> None: ...


class Invocations(Protocol):
    """Invocations, their journals, and who waits for their results (sinks)."""

    def get_invocation(self, invocation_id: InvocationId) -> Invocation | None: ...
    def put_invocation(self, inv: Invocation) -> None: ...
    def delete_invocation(self, invocation_id: InvocationId) -> None: ...
    def invocations_with_status(self, *statuses: Status) -> list[Invocation]: ...
    def list_invocations(
        self, limit: int = 1000, status: str | None = None
    ) -> list[Invocation]: ...
    def append_journal(
        self, inv: Invocation, frame: Frame, now: int, notification: str | None = None
    ) -> int: ...
    def read_journal(self, invocation_id: InvocationId) -> list[Frame]: ...
    def read_journal_of_type(
        self, invocation_id: InvocationId, kind: MessageType
    ) -> list[Frame]: ...
    def has_notification(self, invocation_id: InvocationId, keys: Iterable[str]) -> bool: ...
    def add_sink(self, invocation_id: InvocationId, sink: Sink) -> None: ...
    def take_sinks(self, invocation_id: InvocationId) -> list[Sink]: ...
    def callees_of(self, caller: InvocationId, notification_type: int) -> list[InvocationId]: ...


class State(Protocol):
    """The K/V state of object and workflow keys."""

    def get_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]: ...
    def get_state_value(self, service: str, key: str, state_key: bytes) -> bytes | None: ...
    def set_state(self, service: str, key: str, state_key: bytes, value: bytes) -> None: ...
    def clear_state(self, service: str, key: str, state_key: bytes) -> None: ...
    def clear_all_state(self, service: str, key: str) -> None: ...


class LocksAndInboxes(Protocol):
    """Exclusive locks of object keys, the inboxes queued behind them, queued state edits."""

    def lock_holder(self, service: str, key: str) -> str | None: ...
    def take_lock(self, service: str, key: str, invocation_id: InvocationId) -> None: ...
    def release_lock(self, service: str, key: str) -> None: ...
    def push_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None: ...
    def pop_inbox(self, service: str, key: str) -> str | None: ...
    def remove_from_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None: ...
    def queue_state_edit(
        self, service: str, key: str, new_state: str, version: str | None, prefix: str
    ) -> None: ...
    def take_state_edit(self, key: str, seq: int) -> tuple[str, str, str, str | None] | None: ...


class Timers(Protocol):
    """Durable timers (sleeps, delayed starts, retries, retention expiry)."""

    def add_timer(
        self,
        fire_at: int,
        invocation_id: InvocationId,
        kind: TimerKind,
        completion_id: int | None = None,
    ) -> Timer:
        """Store a timer; returns it (with the sequence number that identifies it)."""
        ...

    def due_timers(self, now: int, limit: int = 1000) -> list[Timer]: ...
    def next_timer_at(self, kinds: Iterable[TimerKind] | None = None) -> int | None: ...
    def due_expiries(self, now: int, limit: int = 1000) -> list[Timer]:
        """Completed invocations whose retention ended by ``now``, as EXPIRE timers with
        ``seq`` RETENTION_SEQ: a completion stores no timer row, its ``expires_at`` is one."""
        ...

    def next_expiry_at(self) -> int | None:
        """When the earliest retention of a completed invocation ends."""
        ...

    def delete_timer(self, timer: Timer) -> None: ...
    def delete_timers_of(
        self, invocation_id: InvocationId, kind: TimerKind | None = None
    ) -> None: ...


class Idempotency(Protocol):
    """The idempotency-key index."""

    def put_idempotency(
        self, service: str, key: str, handler: str, idem_key: str, invocation_id: InvocationId
    ) -> None: ...
    def delete_idempotency(self, invocation_id: InvocationId) -> None: ...


class Promises(Protocol):
    """Workflow promises and the invocations waiting for them."""

    def get_promise(self, service: str, key: str, name: str) -> Result | None: ...
    def complete_promise(self, service: str, key: str, name: str, result: Result) -> None: ...
    def add_promise_listener(
        self, service: str, key: str, name: str, invocation_id: InvocationId, cid: int
    ) -> None: ...
    def take_promise_listeners(
        self, service: str, key: str, name: str
    ) -> list[tuple[InvocationId, int]]: ...
    def clear_promises(self, service: str, key: str) -> None: ...


class Deployments(Protocol):
    """Registered deployments and services (cluster-wide metadata, not partitioned)."""

    def put_deployment(self, d: DeploymentRecord) -> None: ...
    def delete_deployment(self, deployment_id: str) -> None: ...
    def list_deployments(self) -> list[DeploymentRecord]: ...
    def put_service(self, s: ServiceRecord) -> None: ...
    def delete_service(self, name: str) -> None: ...
    def list_services(self) -> list[ServiceRecord]: ...


class Messages(Protocol):
    """Partitioning metadata and the messages between partitions (see ``engine.messages``).

    ``source_pk``/``pk`` are u64 partition keys: the first key of the partition concerned, so the
    rows move with that partition's key range.
    """

    def partition_count(self, requested: int | None, default: int) -> int:
        """The store's partition count: fixed when the store is created (``requested``, or
        ``default``); ``PartitionCountMismatch`` when ``requested`` differs from it later."""
        ...

    def next_outbox_seq(self, source_pk: int) -> int:
        """The next sequence number of the sender partition (stored in the batch)."""
        ...

    def add_outbox(self, source_pk: int, seq: int, target: int, message: bytes) -> None: ...
    def read_outbox(
        self, source_pk: int, target: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        """The sender partition's unacknowledged messages (to ``target`` only, when given):
        ``(seq, target, message)`` in seq order."""
        ...

    def delete_outbox(self, source_pk: int, seqs: Iterable[int]) -> None: ...
    def dedup_seq(self, pk: int, source: int) -> int:
        """The highest seq applied in this receiving partition from ``source`` (0: none)."""
        ...

    def set_dedup_seq(self, pk: int, source: int, seq: int) -> None: ...


class Introspection(Protocol):
    """Read-only SQL over Restate's system tables (``POST /query``), on a snapshot of its own:
    thread-safe, it never touches the engine's open batch."""

    def query(
        self, sql: str, *, live: Iterable[str] = (), timeout: float = 10.0
    ) -> list[dict[str, Any]]: ...


class HotSource(Protocol):
    """Whole-table reads that the in-memory layer (storage/hot.py) loads on start. These tables
    hold rows of live invocations only, so they stay small."""

    def all_locks(self) -> list[tuple[str, str, str]]:
        """(service, key, holder id) of every held lock."""
        ...

    def inbox_sizes(self) -> list[tuple[str, str, int]]:
        """(service, key, entries) of every non-empty inbox."""
        ...

    def all_sinks(self) -> list[tuple[InvocationId, Sink]]:
        """Every (invocation, sink) waiting for a result."""
        ...


class Storage(
    Batches,
    Invocations,
    State,
    LocksAndInboxes,
    Timers,
    Idempotency,
    Promises,
    Deployments,
    Messages,
    Introspection,
    HotSource,
    Protocol,
):
    """Everything the engine stores."""
