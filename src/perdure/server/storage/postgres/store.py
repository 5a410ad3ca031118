"""PostgreSQL as the durable store, behind a node-local SQLite working copy.

The engine runs on the working copy (the SQLite ``Store``, ``synchronous=OFF``, rebuilt from
PostgreSQL at every start), so a transition never waits on the network. The working copy records
every write in its op log (oplog.py: the final image of each row changed, undone with an event
that rolls back). ``sync``, on the engine's writer thread, ships the changes of every committed
batch to PostgreSQL in ONE transaction: the fence check, then per table one DELETE and one
upsert over arrays (``unnest``), all pipelined, so one sync is one round trip whatever it holds.
The engine releases a batch's effects only after that commit.

Partitions (for the cluster): ``load_partitions(ps)`` copies their rows from PostgreSQL into the
working copy, ``drop_partitions(ps)`` deletes them locally and forgets their unshipped changes.
Deployments and services are cluster-wide: loaded at start (``load_metadata`` reloads them).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perdure.server.partitions import DEFAULT_PARTITIONS, PartitionCountMismatch, check_count
from perdure.server.storage.oplog import KEY_LENGTHS, UNPARTITIONED, Change, Key, OpLog
from perdure.server.storage.postgres.fence import FENCED_SQLSTATE, Fence, Fenced, WriterFence
from perdure.server.storage.postgres.schema import migrate
from perdure.server.storage.postgres.url import redact
from perdure.server.storage.sqlite import Store

log = logging.getLogger("perdure.server.storage.postgres")

_U64 = 1 << 64
_META_LOCK = 0x70657265  # pg_advisory_xact_lock key while the partition count is settled
_LOAD_CHUNK = 2000
"""Rows per working-copy transaction when loading: the engine's batches wait at most that long."""


class StoreUnavailable(Exception):
    """PostgreSQL cannot be reached or refused the connection; the message says what to fix."""


def _connect(url: str) -> Any:
    try:
        import psycopg  # noqa: PLC0415  (an optional dependency: perdure[postgres])
    except ImportError:
        raise StoreUnavailable(
            "--store postgresql://... needs the PostgreSQL driver: pip install 'perdure[postgres]'"
        ) from None
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        where = redact(url)
        raise StoreUnavailable(f"cannot connect to PostgreSQL ({where}): {message}") from None


class PostgresStore(Store):
    """The ``Storage`` of a node on PostgreSQL: reads and writes on the working copy at
    ``working_copy`` (a file it owns: replaced at start), durability in PostgreSQL at ``url``.

    ``owned``: the partitions to load at start (None: all of them, a single node); ``fence``:
    the commit check (None: ``WriterFence``, one writer per database)."""

    def __init__(
        self,
        url: str,
        working_copy: Path | str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        owned: Iterable[int] | None = None,
        fence: Fence | None = None,
    ) -> None:
        self.url = url
        self.partition_total = partitions
        self._pg: Any = _connect(url)
        try:
            migrate(self._pg)
            row = self._pg.execute("SELECT value FROM meta WHERE key = 'partitions'").fetchone()
            if row is not None:  # the store's own count wins (partition_count checks a request)
                self.partition_total = int(row[0])
            self.columns = _columns(self._pg)
            self.fence: Fence = fence if fence is not None else WriterFence(self._pg)
            for suffix in ("", "-wal", "-shm"):  # the working copy is rebuilt, never trusted
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{working_copy}{suffix}")
            super().__init__(working_copy, synchronous="OFF")
            self.needs_sync = True
            self.oplog = OpLog()
            self._ship_lock = threading.Lock()
            self.stats = ShipStats()
            self._load(self.db, None if owned is None else frozenset(owned), metadata=True)
        except BaseException:
            self._pg.close()
            raise

    def partition_count(self, requested: int | None, default: int) -> int:
        """The store's partition count, kept in PostgreSQL's meta (set at the first start);
        ``PartitionCountMismatch`` when ``requested`` differs from it."""
        with self._pg.transaction():
            self._pg.execute("SELECT pg_advisory_xact_lock(%s)", (_META_LOCK,))
            row = self._pg.execute("SELECT value FROM meta WHERE key = 'partitions'").fetchone()
            if row is not None:
                count = int(row[0])
                if requested is not None and requested != count:
                    raise PartitionCountMismatch(count, requested)
            else:
                count = check_count(requested if requested is not None else default)
                self._pg.execute(
                    "INSERT INTO meta (key, value) VALUES ('partitions', %s)", (str(count),)
                )
        self.partition_total = count
        return super().partition_count(count, default)  # the working copy's meta agrees

    # -- durability -----------------------------------------------------------------------------

    def sync(self) -> None:
        """Ship every committed change to PostgreSQL in one transaction (the writer thread).
        Raises ``Fenced`` when the fence refused it; any failure keeps the changes for the next
        call."""
        oplog = self.oplog
        assert oplog is not None
        with self._ship_lock:
            changes = oplog.take()
            if not changes:
                return
            try:
                self._ship(changes)
            except BaseException:
                oplog.restore(changes)
                raise

    def _ship(self, changes: dict[Key, Change]) -> None:
        upserts: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        deletes: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        touched: set[int] = set()
        count = self.partition_total
        for (table, key), change in changes.items():
            if table not in UNPARTITIONED:
                touched.add(((key[0] % _U64) * count) >> 64)
            if change.row is None:
                deletes[table].append(key)
            else:
                upserts[table].append(change.row)
        if self._pg is None or self._pg.closed:
            self._pg = _connect(self.url)
        conn = self._pg
        import psycopg  # noqa: PLC0415

        statements = 0
        try:
            with conn.pipeline():
                conn.execute("BEGIN")
                self.fence.check(conn, frozenset(touched))
                for table, keys in deletes.items():
                    conn.execute(self._delete_sql(table), _transpose(keys, KEY_LENGTHS[table]))
                    statements += 1
                for table, rows in upserts.items():
                    conn.execute(self._upsert_sql(table), _transpose(rows, len(rows[0])))
                    statements += 1
                conn.execute("COMMIT")
        except psycopg.Error as exc:
            if not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
            if getattr(exc, "sqlstate", None) == FENCED_SQLSTATE:
                raise Fenced(str(exc).strip().splitlines()[0]) from None
            if conn.broken:
                self._pg = None
            raise
        self.stats.add(len(changes), statements + 3)

    def _delete_sql(self, table: str) -> str:
        key = self.columns[table][: KEY_LENGTHS[table]]
        names = ", ".join(name for name, _ in key)
        arrays = ", ".join(f"%b::{ty}[]" for _, ty in key)
        return f"DELETE FROM {table} WHERE ({names}) IN (SELECT * FROM unnest({arrays}))"

    def _upsert_sql(self, table: str) -> str:
        columns = self.columns[table]
        names = ", ".join(name for name, _ in columns)
        arrays = ", ".join(f"%b::{ty}[]" for _, ty in columns)
        key = ", ".join(name for name, _ in columns[: KEY_LENGTHS[table]])
        rest = [name for name, _ in columns[KEY_LENGTHS[table] :]]
        action = (
            "DO UPDATE SET " + ", ".join(f"{n} = EXCLUDED.{n}" for n in rest)
            if rest
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({key}) {action}"
        )

    def close(self) -> None:
        super().close()
        if self._pg is not None:
            self._pg.close()
            self._pg = None

    # -- partitions -----------------------------------------------------------------------------

    def load_partitions(self, ps: Iterable[int]) -> None:
        """Copy these partitions' rows from PostgreSQL into the working copy (replacing what it
        held of them). Blocking (run it in a worker thread): it writes the working copy on a
        connection of its own, in short transactions, so the engine keeps running meanwhile;
        the engine must not touch these partitions before it returns."""
        local = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._load(local, frozenset(ps), metadata=False)
        finally:
            local.close()

    def drop_partitions(self, ps: Iterable[int]) -> None:
        """Delete these partitions' rows from the working copy, and forget their changes not
        shipped yet (the node lost them: a new owner's data wins). Blocking, like
        ``load_partitions``; the engine must have released them first."""
        ps = frozenset(ps)
        count = self.partition_total
        oplog = self.oplog
        assert oplog is not None
        dropped = oplog.forget(
            lambda table, key: table in UNPARTITIONED or ((key[0] % _U64) * count) >> 64 not in ps
        )
        if dropped:
            log.warning("forgot %d unshipped changes of partitions %s", dropped, sorted(ps))
        where, args = _pk_ranges(ps, count)
        local = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            for table in self.columns:
                if table not in UNPARTITIONED:
                    local.execute(f"DELETE FROM {table} WHERE {where.replace('%s', '?')}", args)
        finally:
            local.close()

    def load_metadata(self) -> None:
        """Reload deployments and services from PostgreSQL into the working copy (another node
        changed them). Blocking, like ``load_partitions``."""
        local = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
        try:
            self._load(local, frozenset(), metadata=True)
        finally:
            local.close()

    def _load(
        self, local: sqlite3.Connection, ps: frozenset[int] | None, *, metadata: bool
    ) -> None:
        """Copy rows from one consistent PostgreSQL snapshot into ``local``: the partitions
        ``ps`` (None: every partition), and deployments and services when ``metadata``."""
        if ps is None:
            where, args = "TRUE", list[int]()
        elif ps:
            where, args = _pk_ranges(ps, self.partition_total)
        else:
            where, args = "FALSE", []
        local_where = where.replace("%s", "?")
        with _connect(self.url) as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for table, columns in self.columns.items():
                partitioned = table not in UNPARTITIONED
                if not partitioned and not metadata:
                    continue
                if partitioned and ps is not None and not ps:
                    continue
                names = ", ".join(name for name, _ in columns)
                marks = ", ".join("?" * len(columns))
                insert = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})"
                local.execute("BEGIN IMMEDIATE")
                if partitioned:
                    local.execute(f"DELETE FROM {table} WHERE {local_where}", args)
                else:
                    local.execute(f"DELETE FROM {table}")
                local.execute("COMMIT")
                sql = f"SELECT {names} FROM {table}" + (f" WHERE {where}" if partitioned else "")
                with conn.cursor(binary=True) as cursor:
                    cursor.execute(sql, args)
                    while rows := cursor.fetchmany(_LOAD_CHUNK):
                        local.execute("BEGIN IMMEDIATE")
                        local.executemany(insert, rows)
                        local.execute("COMMIT")
        self._raise_sequences(local)

    def _raise_sequences(self, local: sqlite3.Connection) -> None:
        """Timer and inbox sequence numbers continue above every loaded row's."""
        timers = int(local.execute("SELECT COALESCE(MAX(seq), 0) FROM timers").fetchone()[0])
        inbox = int(local.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox").fetchone()[0])
        self.raise_sequences(timers, inbox)


class ShipStats:
    """What ``sync`` sent to PostgreSQL (for the bench): transactions, statements (BEGIN, the
    fence check and COMMIT included), rows changed. One transaction is one round trip."""

    def __init__(self) -> None:
        self.transactions = 0
        self.statements = 0
        self.rows = 0

    def add(self, rows: int, statements: int) -> None:
        self.transactions += 1
        self.statements += statements
        self.rows += rows


def _columns(conn: Any) -> dict[str, list[tuple[str, str]]]:
    """Each replicated table's (column, type) in table order, from the catalog."""
    rows = conn.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
        "ORDER BY table_name, ordinal_position",
        (list(KEY_LENGTHS),),
    ).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {table: [] for table in KEY_LENGTHS}
    for table, column, data_type in rows:
        columns[table].append((column, data_type))
    return columns


def _transpose(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (the ``unnest`` arrays)."""
    return [[row[i] for row in rows] for i in range(width)]


def partition_ranges(ps: Iterable[int], count: int) -> list[tuple[int, int]]:
    """The stored (signed 64-bit) ``pk`` intervals, inclusive, of partitions ``ps`` out of
    ``count``: partition p holds the u64 keys k with k * count >> 64 == p."""
    spans: list[list[int]] = []
    for p in sorted(set(ps)):
        lo = -(-(p * _U64) // count)
        hi = -(-((p + 1) * _U64) // count) - 1
        if spans and spans[-1][1] == lo - 1:
            spans[-1][1] = hi
        else:
            spans.append([lo, hi])
    signed: list[tuple[int, int]] = []
    half = 1 << 63
    for lo, hi in spans:
        if hi < half:
            signed.append((lo, hi))
        elif lo >= half:
            signed.append((lo - _U64, hi - _U64))
        else:
            signed.extend([(lo, half - 1), (-half, hi - _U64)])
    return signed


def _pk_ranges(ps: Iterable[int], count: int) -> tuple[str, list[int]]:
    ranges = partition_ranges(ps, count)
    if not ranges:
        return "FALSE", []
    where = " OR ".join("pk BETWEEN %s AND %s" for _ in ranges)
    return f"({where})", [bound for span in ranges for bound in span]
