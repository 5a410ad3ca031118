"""SQLite storage (WAL): the one place that turns engine records into rows and back.

One connection, used only by the engine on the event loop. A batch is one transaction; each event
in it is a savepoint, so a failing event leaves no trace. Reads on the connection see the writes of
the open batch, which is what an engine transition needs.

Committing is split in two so that fsync never runs on the event loop:
* ``commit`` ends the transaction with ``synchronous=NORMAL``: SQLite appends the batch to the WAL
  with plain writes (no fsync), and the next batch, on the same connection, sees it at once;
* ``sync``, called by the engine's writer thread, fsyncs the WAL file: every batch committed before
  the call is then durable, and only then does the engine release the batch's effects.
Automatic checkpoints are off on the engine's connection (a checkpoint fsyncs); ``sync`` runs them
now and then on a connection of its own, which fsyncs the WAL and the database before the WAL is
reused. ``synchronous="OFF"`` (tests) skips every fsync.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perdure.protocol import Frame, InvocationId, MessageType, partition_key_of
from perdure.protocol.messages import message_type
from perdure.server.partitions import PartitionCountMismatch, check_count
from perdure.server.records import (
    RETENTION_SEQ,
    DeploymentRecord,
    Invocation,
    Result,
    ServiceRecord,
    Sink,
    Status,
    Timer,
    TimerKind,
)
from perdure.server.storage.oplog import KEY_LENGTHS, OpLog
from perdure.server.storage.query import run_query
from perdure.server.storage.schema import migrate

_U64_SIGN = 1 << 63


def sql_pk(partition_key: int) -> int:
    """A u64 partition key as SQLite's signed 64-bit integer (order is irrelevant)."""
    return partition_key - (1 << 64) if partition_key >= _U64_SIGN else partition_key


def key_pk(service_key: str) -> int:
    return sql_pk(partition_key_of(service_key))


log = logging.getLogger("perdure.server.storage")
CHECKPOINT_INTERVAL = 1.0
"""Seconds between two checkpoints of the WAL into the database (by ``sync``)."""
WAL_LIMIT = 32 << 20
"""Bytes past which ``sync`` truncates the WAL. Under steady writes a PASSIVE checkpoint rarely
catches up with the engine's commits, so SQLite never rewinds the WAL and it grows without bound;
a TRUNCATE checkpoint waits for the open batch and holds writes for its duration (milliseconds:
PASSIVE checkpoints already copied nearly every frame)."""

_INVOCATION_COLUMNS = (
    "pk, id, service, handler, key, service_ty, handler_ty, status, idempotency_key, "
    "deployment_id, protocol_version, created_at, modified_at, execution_time, retry_count, "
    "attempts_since_progress, last_append_at, next_retry_at, last_failure, awaiting, "
    "journal_len, result_kind, result_value, failure_code, failure_message, completed_at, "
    "expires_at, invoked_by, failure_metadata"
)


_PUT_INVOCATION = (
    f"INSERT OR REPLACE INTO invocations ({_INVOCATION_COLUMNS}) VALUES ({', '.join('?' * 29)})"
)
_KEY_COLUMNS = {
    "invocations": "pk, id",
    "journal": "pk, id, idx",
    "state": "pk, service, key, state_key",
    "locks": "pk, service, key",
    "inbox": "pk, service, key, seq",
    "timers": "pk, seq",
    "sinks": "pk, id, caller, completion_id",
    "idempotency": "pk, service, key, handler, idempotency_key",
    "promises": "pk, service, key, name",
    "promise_listeners": "pk, service, key, name, id, completion_id",
    "state_edits": "pk, seq",
}
assert all(len(c.split(", ")) == KEY_LENGTHS[t] for t, c in _KEY_COLUMNS.items())


class Store:
    """The tables of schema.py behind the ``Storage`` Protocols (storage/api.py). One owner: the
    engine; only ``sync`` and ``query`` may be called from other threads."""

    oplog: OpLog | None = None
    """When set (a working copy of a remote store), every write is recorded in it as well."""

    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        self.path = str(path)
        self.needs_sync = synchronous.upper() != "OFF" and self.path != ":memory:"
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=5000")
        self.db.execute(f"PRAGMA synchronous={'NORMAL' if self.needs_sync else 'OFF'}")
        if self.needs_sync:
            self.db.execute("PRAGMA wal_autocheckpoint=0")  # sync() checkpoints, off the loop
        self.db.execute("PRAGMA foreign_keys=OFF")
        migrate(self.db)
        self._in_tx = False
        self._events = 0
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM timers").fetchone()
        self._timer_seq = int(row[0])
        row = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox").fetchone()
        self._inbox_seq = int(row[0])
        self._seq_floor = (0, 0)  # (timers, inbox): raised by rows another connection loaded
        self._sync_lock = threading.Lock()
        self._wal_fd: int | None = None
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpointed_at = time.monotonic()
        if self.needs_sync:  # the store's file and its WAL are in the directory: make them stick
            self.sync()
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))

    # -- batches -------------------------------------------------------------------------------

    def begin(self) -> None:
        """Open a batch (if none is open)."""
        if not self._in_tx:
            self.db.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    @property
    def in_batch(self) -> bool:
        return self._in_tx

    def begin_event(self) -> None:
        self.begin()
        self._events += 1
        self.db.execute(f"SAVEPOINT ev{self._events}")
        if self.oplog is not None:
            self.oplog.begin_event()

    def end_event(self, *, keep: bool) -> None:
        name = f"ev{self._events}"
        if not keep:
            self.db.execute(f"ROLLBACK TO {name}")
        self.db.execute(f"RELEASE {name}")
        self._events -= 1
        if self.oplog is not None:
            self.oplog.end_event(keep=keep)

    def commit(self) -> bool:
        if not self._in_tx:
            if self.oplog is not None:  # writes outside a batch were autocommitted
                self.oplog.commit()
            return False
        self._in_tx = False
        self._events = 0
        self.db.execute("COMMIT")
        if self.oplog is not None:
            self.oplog.commit()
        return True

    def rollback(self) -> None:
        if self._in_tx:
            self._in_tx = False
            self._events = 0
            self.db.execute("ROLLBACK")
            if self.oplog is not None:
                self.oplog.discard()

    def sync(self) -> None:
        if not self.needs_sync:
            return
        with self._sync_lock:
            if self._wal_fd is None:
                try:
                    self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY)
                except FileNotFoundError:
                    return  # nothing was ever written to the WAL
            os.fsync(self._wal_fd)  # every committed batch is durable from here on
            if time.monotonic() - self._checkpointed_at >= CHECKPOINT_INTERVAL:
                try:
                    self._checkpoint()
                except sqlite3.Error as exc:  # busy, say: the WAL just grows until the next one
                    log.warning("checkpointing the store failed (retried later): %s", exc)
                    self._checkpointed_at = time.monotonic()

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without blocking the engine's writes (PASSIVE); with
        ``synchronous=NORMAL`` SQLite fsyncs the WAL and the database, so the WAL can be reused."""
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._checkpointer.execute("PRAGMA busy_timeout=5000")
            self._checkpointer.execute("PRAGMA synchronous=NORMAL")
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        self._checkpointed_at = time.monotonic()
        if self._wal_fd is not None and os.fstat(self._wal_fd).st_size > WAL_LIMIT:
            self._checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def close(self) -> None:
        self.rollback()
        with self._sync_lock:
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
            self.db.close()  # the last connection checkpoints (fsync) and removes the WAL
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def raise_sequences(self, timers: int, inbox: int) -> None:
        """Timer and inbox sequence numbers continue above these (rows another connection
        loaded into the file). Safe from any thread: one attribute store."""
        self._seq_floor = (max(timers, self._seq_floor[0]), max(inbox, self._seq_floor[1]))

    # -- introspection -------------------------------------------------------------------------

    def query(
        self, sql: str, *, live: Iterable[str] = (), timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """One read-only statement on a connection of its own (thread-safe)."""
        return run_query(self.path, sql, live=live, timeout=timeout)

    # -- invocations ---------------------------------------------------------------------------

    def get_invocation(self, invocation_id: InvocationId) -> Invocation | None:
        row = self.db.execute(
            f"SELECT {_INVOCATION_COLUMNS} FROM invocations WHERE pk = ? AND id = ?",
            (sql_pk(invocation_id.partition_key), str(invocation_id)),
        ).fetchone()
        return _invocation(row) if row else None

    def put_invocation(self, inv: Invocation) -> None:
        result = inv.result
        kind = None if result is None else ("value" if result.ok else "failure")
        row = (
            sql_pk(inv.id.partition_key),
            str(inv.id),
            inv.service,
            inv.handler,
            inv.key,
            inv.service_ty,
            inv.handler_ty,
            inv.status.value,
            inv.idempotency_key,
            inv.deployment_id,
            inv.protocol_version,
            inv.created_at,
            inv.modified_at,
            inv.execution_time,
            inv.retry_count,
            inv.attempts_since_progress,
            inv.last_append_at,
            inv.next_retry_at,
            inv.last_failure,
            json.dumps(inv.awaiting) if inv.awaiting else None,
            inv.journal_len,
            kind,
            None if result is None else result.value,
            None if result is None else result.failure_code,
            None if result is None else result.failure_message,
            inv.completed_at,
            inv.expires_at,
            inv.invoked_by,
            None if result is None else _metadata_json(result),
        )
        self.db.execute(_PUT_INVOCATION, row)
        if self.oplog is not None:
            self.oplog.put("invocations", row)

    def delete_invocation(self, invocation_id: InvocationId) -> None:
        args = (sql_pk(invocation_id.partition_key), str(invocation_id))
        self._delete("invocations", "pk = ? AND id = ?", args)
        self._delete("journal", "pk = ? AND id = ?", args)
        self._delete("sinks", "pk = ? AND id = ?", args)
        self.delete_timers_of(invocation_id)

    def invocations_with_status(self, *statuses: Status) -> list[Invocation]:
        marks = ", ".join("?" * len(statuses))
        # the literal term lets SQLite use the index of live invocations (schema migration 5)
        live = "" if Status.COMPLETED in statuses else " AND status != 'completed'"
        rows = self.db.execute(
            f"SELECT {_INVOCATION_COLUMNS} FROM invocations WHERE status IN ({marks}){live}",
            [s.value for s in statuses],
        ).fetchall()
        return [_invocation(r) for r in rows]

    def list_invocations(self, limit: int = 1000, status: str | None = None) -> list[Invocation]:
        """The newest ``limit`` invocations (with ``status`` only, when given)."""
        where = "WHERE status = ?" if status else ""
        if status and status != Status.COMPLETED.value:
            where += " AND status != 'completed'"  # the index of live invocations
        rows = self.db.execute(
            f"SELECT {_INVOCATION_COLUMNS} FROM invocations {where} "
            "ORDER BY created_at DESC LIMIT ?",
            (status, limit) if status else (limit,),
        ).fetchall()
        return [_invocation(r) for r in rows]

    # -- journal -------------------------------------------------------------------------------

    def append_journal(
        self, inv: Invocation, frame: Frame, now: int, notification: str | None = None
    ) -> int:
        """Append one message; updates ``inv.journal_len`` (the caller stores ``inv``)."""
        index = inv.journal_len
        row = (sql_pk(inv.id.partition_key), str(inv.id), index, int(frame.type), frame.flags,
               frame.payload, notification, now)  # fmt: skip
        self.db.execute(
            "INSERT INTO journal (pk, id, idx, type, flags, payload, notification, appended_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("journal", row, fresh=True)
        inv.journal_len = index + 1
        inv.last_append_at = now
        return index

    def read_journal(self, invocation_id: InvocationId) -> list[Frame]:
        rows = self.db.execute(
            "SELECT type, flags, payload FROM journal WHERE pk = ? AND id = ? ORDER BY idx",
            (sql_pk(invocation_id.partition_key), str(invocation_id)),
        ).fetchall()
        return [Frame(message_type(t), f, bytes(p)) for t, f, p in rows]

    def read_journal_of_type(self, invocation_id: InvocationId, kind: MessageType) -> list[Frame]:
        """The journal entries of one message type, in order."""
        rows = self.db.execute(
            "SELECT flags, payload FROM journal WHERE pk = ? AND id = ? AND type = ? ORDER BY idx",
            (sql_pk(invocation_id.partition_key), str(invocation_id), int(kind)),
        ).fetchall()
        return [Frame(kind, f, bytes(p)) for f, p in rows]

    def has_notification(self, invocation_id: InvocationId, keys: Iterable[str]) -> bool:
        keys = list(keys)
        if not keys:
            return False
        marks = ", ".join("?" * len(keys))
        row = self.db.execute(
            f"SELECT 1 FROM journal WHERE pk = ? AND id = ? AND notification IN ({marks}) LIMIT 1",
            (sql_pk(invocation_id.partition_key), str(invocation_id), *keys),
        ).fetchone()
        return row is not None

    # -- object / workflow state ---------------------------------------------------------------

    def get_state(self, service: str, key: str) -> list[tuple[bytes, bytes]]:
        rows = self.db.execute(
            "SELECT state_key, value FROM state WHERE pk = ? AND service = ? AND key = ? "
            "ORDER BY state_key",
            (key_pk(key), service, key),
        ).fetchall()
        return [(bytes(k), bytes(v)) for k, v in rows]

    def get_state_value(self, service: str, key: str, state_key: bytes) -> bytes | None:
        row = self.db.execute(
            "SELECT value FROM state WHERE pk = ? AND service = ? AND key = ? AND state_key = ?",
            (key_pk(key), service, key, state_key),
        ).fetchone()
        return None if row is None else bytes(row[0])

    def set_state(self, service: str, key: str, state_key: bytes, value: bytes) -> None:
        row = (key_pk(key), service, key, state_key, value)
        self.db.execute(
            "INSERT OR REPLACE INTO state (pk, service, key, state_key, value) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("state", row)

    def clear_state(self, service: str, key: str, state_key: bytes) -> None:
        self._delete_row("state", (key_pk(key), service, key, state_key),
                         "pk = ? AND service = ? AND key = ? AND state_key = ?")  # fmt: skip

    def clear_all_state(self, service: str, key: str) -> None:
        self._delete("state", "pk = ? AND service = ? AND key = ?", (key_pk(key), service, key))

    # -- exclusive locks and inboxes -----------------------------------------------------------

    def lock_holder(self, service: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT id FROM locks WHERE pk = ? AND service = ? AND key = ?",
            (key_pk(key), service, key),
        ).fetchone()
        return None if row is None else str(row[0])

    def take_lock(self, service: str, key: str, invocation_id: InvocationId) -> None:
        row = (key_pk(key), service, key, str(invocation_id))
        self.db.execute(
            "INSERT OR REPLACE INTO locks (pk, service, key, id) VALUES (?, ?, ?, ?)", row
        )
        if self.oplog is not None:
            self.oplog.put("locks", row)

    def release_lock(self, service: str, key: str) -> None:
        self._delete_row("locks", (key_pk(key), service, key),
                         "pk = ? AND service = ? AND key = ?")  # fmt: skip

    def push_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None:
        self._inbox_seq = max(self._inbox_seq, self._seq_floor[1]) + 1
        row = (key_pk(key), service, key, self._inbox_seq, str(invocation_id))
        self.db.execute("INSERT INTO inbox (pk, service, key, seq, id) VALUES (?, ?, ?, ?, ?)", row)
        if self.oplog is not None:
            self.oplog.put("inbox", row, fresh=True)

    def pop_inbox(self, service: str, key: str) -> str | None:
        row = self.db.execute(
            "SELECT seq, id FROM inbox WHERE pk = ? AND service = ? AND key = ? "
            "ORDER BY seq LIMIT 1",
            (key_pk(key), service, key),
        ).fetchone()
        if row is None:
            return None
        self._delete_row("inbox", (key_pk(key), service, key, row[0]),
                         "pk = ? AND service = ? AND key = ? AND seq = ?")  # fmt: skip
        return str(row[1])

    def remove_from_inbox(self, service: str, key: str, invocation_id: InvocationId) -> None:
        self._delete("inbox", "pk = ? AND service = ? AND key = ? AND id = ?",
                     (key_pk(key), service, key, str(invocation_id)))  # fmt: skip

    # -- queued state edits (admin API) ---------------------------------------------------------

    def queue_state_edit(
        self, service: str, key: str, new_state: str, version: str | None, prefix: str
    ) -> None:
        """Queue an edit in the key's inbox; its inbox entry is ``<prefix><seq>``."""
        self._inbox_seq = max(self._inbox_seq, self._seq_floor[1]) + 1
        seq = self._inbox_seq
        entry = (key_pk(key), service, key, seq, f"{prefix}{seq}")
        self.db.execute(
            "INSERT INTO inbox (pk, service, key, seq, id) VALUES (?, ?, ?, ?, ?)", entry
        )
        edit = (key_pk(key), seq, service, key, new_state, version)
        self.db.execute(
            "INSERT INTO state_edits (pk, seq, service, key, new_state, version) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            edit,
        )
        if self.oplog is not None:
            self.oplog.put("inbox", entry, fresh=True)
            self.oplog.put("state_edits", edit, fresh=True)

    def take_state_edit(self, key: str, seq: int) -> tuple[str, str, str, str | None] | None:
        """(service, key, new_state JSON, version) of a queued edit, removed."""
        row = self.db.execute(
            "SELECT service, key, new_state, version FROM state_edits WHERE pk = ? AND seq = ?",
            (key_pk(key), seq),
        ).fetchone()
        if row is None:
            return None
        self._delete_row("state_edits", (key_pk(key), seq), "pk = ? AND seq = ?")
        return str(row[0]), str(row[1]), str(row[2]), None if row[3] is None else str(row[3])

    # -- timers --------------------------------------------------------------------------------

    def add_timer(
        self,
        fire_at: int,
        invocation_id: InvocationId,
        kind: TimerKind,
        completion_id: int | None = None,
    ) -> Timer:
        self._timer_seq = max(self._timer_seq, self._seq_floor[0]) + 1
        row = (sql_pk(invocation_id.partition_key), self._timer_seq, fire_at, str(invocation_id),
               kind.value, completion_id)  # fmt: skip
        self.db.execute(
            "INSERT INTO timers (pk, seq, fire_at, id, kind, completion_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("timers", row, fresh=True)
        return Timer(row[0], self._timer_seq, fire_at, invocation_id, kind, completion_id)

    def due_timers(self, now: int, limit: int = 1000) -> list[Timer]:
        rows = self.db.execute(
            "SELECT pk, seq, fire_at, id, kind, completion_id FROM timers "
            "WHERE fire_at <= ? ORDER BY fire_at, seq LIMIT ?",
            (now, limit),
        ).fetchall()
        return [
            Timer(pk, seq, at, InvocationId.parse(i), TimerKind(k), c)
            for pk, seq, at, i, k, c in rows
        ]

    def next_timer_at(self, kinds: Iterable[TimerKind] | None = None) -> int | None:
        """When the earliest timer fires (of ``kinds`` only, when given)."""
        if kinds is None:
            row = self.db.execute("SELECT MIN(fire_at) FROM timers").fetchone()
        else:
            names = [k.value for k in kinds]
            marks = ", ".join("?" * len(names))
            query = f"SELECT MIN(fire_at) FROM timers WHERE kind IN ({marks})"
            row = self.db.execute(query, names).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def due_expiries(self, now: int, limit: int = 1000) -> list[Timer]:
        rows = self.db.execute(
            "SELECT pk, id, expires_at FROM invocations "
            "WHERE status = 'completed' AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [
            Timer(pk, RETENTION_SEQ, at, InvocationId.parse(i), TimerKind.EXPIRE)
            for pk, i, at in rows
        ]

    def next_expiry_at(self) -> int | None:
        row = self.db.execute(
            "SELECT MIN(expires_at) FROM invocations WHERE status = 'completed'"
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def delete_timer(self, timer: Timer) -> None:
        if timer.retention:
            return  # no row: the invocation's purge ends it
        self._delete_row("timers", (timer.pk, timer.seq), "pk = ? AND seq = ?")

    def delete_timers_of(self, invocation_id: InvocationId, kind: TimerKind | None = None) -> None:
        where = "pk = ? AND id = ?"
        args: tuple[object, ...] = (sql_pk(invocation_id.partition_key), str(invocation_id))
        if kind is not None:
            where += " AND kind = ?"
            args = (*args, kind.value)
        self._delete("timers", where, args)

    # -- sinks (who waits for an invocation's result) ------------------------------------------

    def add_sink(self, invocation_id: InvocationId, sink: Sink) -> None:
        row = (sql_pk(invocation_id.partition_key), str(invocation_id), str(sink.caller),
               sink.completion_id, sink.notification_type)  # fmt: skip
        self.db.execute(
            "INSERT OR REPLACE INTO sinks (pk, id, caller, completion_id, notification_type) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("sinks", row)

    def take_sinks(self, invocation_id: InvocationId) -> list[Sink]:
        args = (sql_pk(invocation_id.partition_key), str(invocation_id))
        rows = self.db.execute(
            "SELECT caller, completion_id, notification_type FROM sinks WHERE pk = ? AND id = ?",
            args,
        ).fetchall()
        self._delete("sinks", "pk = ? AND id = ?", args)
        return [Sink(InvocationId.parse(c), cid, t) for c, cid, t in rows]

    def callees_of(self, caller: InvocationId, notification_type: int) -> list[InvocationId]:
        rows = self.db.execute(
            "SELECT id FROM sinks WHERE caller = ? AND notification_type = ?",
            (str(caller), notification_type),
        ).fetchall()
        return [InvocationId.parse(r[0]) for r in rows]

    # -- idempotency index ---------------------------------------------------------------------

    def put_idempotency(
        self, service: str, key: str, handler: str, idem_key: str, invocation_id: InvocationId
    ) -> None:
        row = (sql_pk(invocation_id.partition_key), service, key, handler, idem_key,
               str(invocation_id))  # fmt: skip
        self.db.execute(
            "INSERT OR REPLACE INTO idempotency (pk, service, key, handler, idempotency_key, id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("idempotency", row)

    def delete_idempotency(self, invocation_id: InvocationId) -> None:
        self._delete("idempotency", "pk = ? AND id = ?",
                     (sql_pk(invocation_id.partition_key), str(invocation_id)))  # fmt: skip

    # -- workflow promises ---------------------------------------------------------------------

    def get_promise(self, service: str, key: str, name: str) -> Result | None:
        row = self.db.execute(
            "SELECT result_kind, value, failure_code, failure_message, failure_metadata "
            "FROM promises "
            "WHERE pk = ? AND service = ? AND key = ? AND name = ?",
            (key_pk(key), service, key, name),
        ).fetchone()
        return None if row is None else _result(row)

    def complete_promise(self, service: str, key: str, name: str, result: Result) -> None:
        row = (
            key_pk(key), service, key, name, "value" if result.ok else "failure",
            result.value, result.failure_code, result.failure_message, _metadata_json(result),
        )  # fmt: skip
        self.db.execute(
            "INSERT INTO promises (pk, service, key, name, result_kind, value, failure_code, "
            "failure_message, failure_metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("promises", row, fresh=True)

    def add_promise_listener(
        self, service: str, key: str, name: str, invocation_id: InvocationId, cid: int
    ) -> None:
        row = (key_pk(key), service, key, name, str(invocation_id), cid)
        self.db.execute(
            "INSERT OR REPLACE INTO promise_listeners (pk, service, key, name, id, completion_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("promise_listeners", row)

    def take_promise_listeners(
        self, service: str, key: str, name: str
    ) -> list[tuple[InvocationId, int]]:
        args = (key_pk(key), service, key, name)
        rows = self.db.execute(
            "SELECT id, completion_id FROM promise_listeners "
            "WHERE pk = ? AND service = ? AND key = ? AND name = ?",
            args,
        ).fetchall()
        self._delete("promise_listeners", "pk = ? AND service = ? AND key = ? AND name = ?", args)
        return [(InvocationId.parse(i), c) for i, c in rows]

    def clear_promises(self, service: str, key: str) -> None:
        args = (key_pk(key), service, key)
        self._delete("promises", "pk = ? AND service = ? AND key = ?", args)
        self._delete("promise_listeners", "pk = ? AND service = ? AND key = ?", args)

    # -- whole tables of live data, for the in-memory layer (storage/hot.py) ----------------------

    def all_locks(self) -> list[tuple[str, str, str]]:
        rows = self.db.execute("SELECT service, key, id FROM locks").fetchall()
        return [(str(s), str(k), str(i)) for s, k, i in rows]

    def inbox_sizes(self) -> list[tuple[str, str, int]]:
        rows = self.db.execute("SELECT service, key, COUNT(*) FROM inbox GROUP BY pk, service, key")
        return [(str(s), str(k), int(n)) for s, k, n in rows.fetchall()]

    def all_sinks(self) -> list[tuple[InvocationId, Sink]]:
        rows = self.db.execute(
            "SELECT id, caller, completion_id, notification_type FROM sinks"
        ).fetchall()
        return [
            (InvocationId.parse(i), Sink(InvocationId.parse(c), cid, t)) for i, c, cid, t in rows
        ]

    # -- partitions and the messages between them ----------------------------------------------

    def partition_count(self, requested: int | None, default: int) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key = 'partitions'").fetchone()
        if row is not None:
            stored = int(row[0])
            if requested is not None and requested != stored:
                raise PartitionCountMismatch(stored, requested)
            return stored
        count = check_count(requested if requested is not None else default)
        self.db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('partitions', ?)", (str(count),)
        )
        return count

    def next_outbox_seq(self, source_pk: int) -> int:
        pk = sql_pk(source_pk)
        row = self.db.execute("SELECT seq FROM outbox_seq WHERE pk = ?", (pk,)).fetchone()
        seq = (0 if row is None else int(row[0])) + 1
        self.db.execute("INSERT OR REPLACE INTO outbox_seq (pk, seq) VALUES (?, ?)", (pk, seq))
        if self.oplog is not None:
            self.oplog.put("outbox_seq", (pk, seq))
        return seq

    def add_outbox(self, source_pk: int, seq: int, target: int, message: bytes) -> None:
        row = (sql_pk(source_pk), seq, target, message)
        self.db.execute("INSERT INTO outbox (pk, seq, target, message) VALUES (?, ?, ?, ?)", row)
        if self.oplog is not None:
            self.oplog.put("outbox", row, fresh=True)

    def read_outbox(
        self, source_pk: int, target: int | None = None
    ) -> list[tuple[int, int, bytes]]:
        query = "SELECT seq, target, message FROM outbox WHERE pk = ?"
        args: tuple[object, ...] = (sql_pk(source_pk),)
        if target is not None:
            query += " AND target = ?"
            args = (*args, target)
        rows = self.db.execute(query + " ORDER BY seq", args).fetchall()
        return [(int(s), int(t), bytes(m)) for s, t, m in rows]

    def delete_outbox(self, source_pk: int, seqs: Iterable[int]) -> None:
        pk = sql_pk(source_pk)
        keys = [(pk, seq) for seq in seqs]
        self.db.executemany("DELETE FROM outbox WHERE pk = ? AND seq = ?", keys)
        if self.oplog is not None:
            for key in keys:
                self.oplog.delete("outbox", key)

    def dedup_seq(self, pk: int, source: int) -> int:
        row = self.db.execute(
            "SELECT seq FROM dedup WHERE pk = ? AND source = ?", (sql_pk(pk), source)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def set_dedup_seq(self, pk: int, source: int, seq: int) -> None:
        row = (sql_pk(pk), source, seq)
        self.db.execute("INSERT OR REPLACE INTO dedup (pk, source, seq) VALUES (?, ?, ?)", row)
        if self.oplog is not None:
            self.oplog.put("dedup", row)

    # -- deployments and services --------------------------------------------------------------

    def put_deployment(self, d: DeploymentRecord) -> None:
        row = (
            d.id, d.uri, int(d.use_http_11), json.dumps(d.additional_headers),
            json.dumps(d.metadata), d.protocol_mode, d.min_protocol_version,
            d.max_protocol_version, d.sdk_version, d.manifest, d.created_at,
        )  # fmt: skip
        self.db.execute(
            "INSERT OR REPLACE INTO deployments (id, uri, use_http_11, additional_headers, "
            "metadata, protocol_mode, min_protocol_version, max_protocol_version, sdk_version, "
            "manifest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("deployments", row)

    def delete_deployment(self, deployment_id: str) -> None:
        self._delete_row("deployments", (deployment_id,), "id = ?")

    def list_deployments(self) -> list[DeploymentRecord]:
        rows = self.db.execute(
            "SELECT id, uri, use_http_11, additional_headers, metadata, protocol_mode, "
            "min_protocol_version, max_protocol_version, sdk_version, manifest, created_at "
            "FROM deployments ORDER BY created_at"
        ).fetchall()
        return [
            DeploymentRecord(
                r[0], r[1], bool(r[2]), json.loads(r[3]), json.loads(r[4]), r[5], r[6], r[7],
                r[8], r[9], r[10],
            )
            for r in rows
        ]  # fmt: skip

    def put_service(self, s: ServiceRecord) -> None:
        row = (s.name, s.revision, s.deployment_id, s.manifest, s.overrides)
        self.db.execute(
            "INSERT OR REPLACE INTO services (name, revision, deployment_id, manifest, overrides) "
            "VALUES (?, ?, ?, ?, ?)",
            row,
        )
        if self.oplog is not None:
            self.oplog.put("services", row)

    def delete_service(self, name: str) -> None:
        self._delete_row("services", (name,), "name = ?")

    def list_services(self) -> list[ServiceRecord]:
        rows = self.db.execute(
            "SELECT name, revision, deployment_id, manifest, overrides FROM services ORDER BY name"
        ).fetchall()
        return [ServiceRecord(*r) for r in rows]

    # -- deletes, recorded in the op log -------------------------------------------------------

    def _delete_row(self, table: str, key: tuple[object, ...], where: str) -> None:
        """Delete one row by its primary key (``where`` matches the key's columns in order)."""
        self.db.execute(f"DELETE FROM {table} WHERE {where}", key)
        if self.oplog is not None:
            self.oplog.delete(table, key)

    def _delete(self, table: str, where: str, args: tuple[object, ...]) -> None:
        """Delete the rows ``where`` matches; with an op log, each deleted row's key is recorded
        (RETURNING), so the remote store deletes exactly those rows."""
        if self.oplog is None:
            self.db.execute(f"DELETE FROM {table} WHERE {where}", args)
            return
        returning = _KEY_COLUMNS[table]
        for key in self.db.execute(f"DELETE FROM {table} WHERE {where} RETURNING {returning}",
                                   args).fetchall():  # fmt: skip
            self.oplog.delete(table, tuple(key))


def _metadata_json(result: Result) -> str | None:
    return json.dumps(result.failure_metadata) if result.failure_metadata else None


def _result(row: Any) -> Result:
    kind, value, code, message, metadata = row
    if kind == "value":
        return Result(value=bytes(value) if value is not None else b"")
    pairs = tuple((str(k), str(v)) for k, v in json.loads(metadata)) if metadata else ()
    return Result.failure(int(code), str(message or ""), pairs)


def _invocation(row: Any) -> Invocation:
    (
        _pk, id_, service, handler, key, service_ty, handler_ty, status, idem, dep, version,
        created, modified, execution_time, retry_count, since_progress, last_append, next_retry,
        last_failure, awaiting, journal_len, result_kind, result_value, failure_code,
        failure_message, completed_at, expires_at, invoked_by, failure_metadata,
    ) = row  # fmt: skip
    result = (
        None
        if result_kind is None
        else _result((result_kind, result_value, failure_code, failure_message, failure_metadata))
    )
    return Invocation(
        id=InvocationId.parse(str(id_)),
        service=str(service),
        handler=str(handler),
        key=str(key),
        service_ty=str(service_ty),
        handler_ty=None if handler_ty is None else str(handler_ty),
        status=Status(status),
        created_at=int(created),
        modified_at=int(modified),
        last_append_at=int(last_append),
        idempotency_key=None if idem is None else str(idem),
        deployment_id=None if dep is None else str(dep),
        protocol_version=None if version is None else int(version),
        execution_time=None if execution_time is None else int(execution_time),
        retry_count=int(retry_count),
        attempts_since_progress=int(since_progress),
        next_retry_at=None if next_retry is None else int(next_retry),
        last_failure=None if last_failure is None else str(last_failure),
        awaiting=json.loads(str(awaiting)) if awaiting else [],
        journal_len=int(journal_len),
        result=result,
        completed_at=None if completed_at is None else int(completed_at),
        expires_at=None if expires_at is None else int(expires_at),
        invoked_by=None if invoked_by is None else str(invoked_by),
    )


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
