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
import json
import logging
import os
import re
import sqlite3
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from perdure.server.partitions import DEFAULT_PARTITIONS, PartitionCountMismatch, check_count
from perdure.server.storage.oplog import KEY_LENGTHS, UNPARTITIONED, Change, Key, OpLog
from perdure.server.storage.postgres.fence import FENCED_SQLSTATE, Fence, Fenced, WriterFence
from perdure.server.storage.postgres.schema import migrate
from perdure.server.storage.postgres.url import redact
from perdure.server.storage.query import QueryError, run_query
from perdure.server.storage.schema import migrate as migrate_sqlite
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
    the commit check (None: ``WriterFence``, one writer per database); ``exit_when_fenced``: a
    fenced commit ends the process at once (a single-node server whose store another server took
    over: nothing it still holds may be written, and it must not go on answering)."""

    def __init__(
        self,
        url: str,
        working_copy: Path | str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        owned: Iterable[int] | None = None,
        fence: Fence | None = None,
        exit_when_fenced: bool = False,
    ) -> None:
        self.url = url
        self.exit_when_fenced = exit_when_fenced
        self.partition_total = partitions
        self._pg: Any = _connect(url)
        try:
            migrate(self._pg)
            row = self._pg.execute("SELECT value FROM meta WHERE key = 'partitions'").fetchone()
            if row is not None:  # the store's own count wins (partition_count checks a request)
                self.partition_total = int(row[0])
            self.columns = _columns(self._pg)
            self._bytea = {
                table: frozenset(i for i, (_, ty) in enumerate(cols) if ty == "bytea")
                for table, cols in self.columns.items()
            }
            self.fence: Fence = fence if fence is not None else WriterFence(self._pg)
            for suffix in ("", "-wal", "-shm"):  # the working copy is rebuilt, never trusted
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{working_copy}{suffix}")
            super().__init__(working_copy, synchronous="OFF")
            self.needs_sync = True
            self.oplog = OpLog()
            self._ship_lock = threading.Lock()
            self.stats = ShipStats()
            self._complete = owned is None  # the working copy holds every partition
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
            except Fenced:
                oplog.restore(changes)
                if self.exit_when_fenced:
                    log.critical("another perdure server took over %s: exiting", redact(self.url))
                    logging.shutdown()
                    os._exit(EXIT_FENCED)
                raise
            except _NulInText:
                try:  # PostgreSQL text cannot hold NUL: ship those values with U+FFFD instead
                    log.warning("a text value holds NUL; stored in PostgreSQL with U+FFFD")
                    self._ship(
                        {
                            (table, _without_nul(key)): Change(
                                None if c.row is None else _without_nul(c.row), c.fresh
                            )
                            for (table, key), c in changes.items()
                        }
                    )
                except BaseException:
                    oplog.restore(changes)
                    raise
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
        # One statement writes everything (a data-modifying CTE per table and kind: their keys
        # are disjoint), so it is sent whole or not at all; the fence's statements before it.
        # Pipelined without BEGIN/COMMIT, all up to the one Sync is one implicit transaction:
        # an error in any statement rolls all of it back.
        # Each table's rows travel as one JSON array of arrays (bytes as hex): json.dumps is C,
        # where psycopg would build one typed array per column in Python.
        parts: list[str] = []
        params: list[str] = []
        for table in sorted(deletes):
            parts.append(f"d_{table} AS ({self._delete_sql(table)})")
            params.append(self._json(table, deletes[table]))
        for table in sorted(upserts):
            parts.append(f"u_{table} AS ({self._upsert_sql(table)})")
            params.append(self._json(table, upserts[table]))
        write = "WITH " + ", ".join(parts) + " SELECT 1"
        if self._pg is None or self._pg.closed:
            self._pg = _connect(self.url)
        conn = self._pg
        import psycopg  # noqa: PLC0415

        try:
            with conn.pipeline():
                self.fence.check(conn, frozenset(touched))
                conn.execute(write, params)
        except psycopg.Error as exc:
            sqlstate = getattr(exc, "sqlstate", None)
            if sqlstate == FENCED_SQLSTATE:
                raise Fenced(str(exc).strip().splitlines()[0]) from None
            if sqlstate in _NUL_SQLSTATES or (
                isinstance(exc, psycopg.DataError) and "NUL" in str(exc)
            ):
                raise _NulInText from exc
            if conn.broken:
                self._pg = None
            raise
        self.stats.add(len(changes), 2)

    def _delete_sql(self, table: str) -> str:
        key = self.columns[table][: KEY_LENGTHS[table]]
        names = ", ".join(name for name, _ in key)
        values = ", ".join(_from_json(i, ty) for i, (_, ty) in enumerate(key))
        return (
            f"DELETE FROM {table} WHERE ({names}) IN "
            f"(SELECT {values} FROM json_array_elements(%s::json) AS r)"
        )

    def _upsert_sql(self, table: str) -> str:
        columns = self.columns[table]
        names = ", ".join(name for name, _ in columns)
        values = ", ".join(_from_json(i, ty) for i, (_, ty) in enumerate(columns))
        key = ", ".join(name for name, _ in columns[: KEY_LENGTHS[table]])
        rest = [name for name, _ in columns[KEY_LENGTHS[table] :]]
        action = (
            "DO UPDATE SET " + ", ".join(f"{n} = EXCLUDED.{n}" for n in rest)
            if rest
            else "DO NOTHING"
        )
        return (
            f"INSERT INTO {table} ({names}) "
            f"SELECT {values} FROM json_array_elements(%s::json) AS r "
            f"ON CONFLICT ({key}) {action}"
        )

    def _json(self, table: str, rows: list[tuple[Any, ...]]) -> str:
        """Rows (or keys) as a JSON array of arrays, bytes as hex."""
        binary = self._bytea[table]
        if binary:
            rows = [
                tuple(v.hex() if i in binary and v is not None else v for i, v in enumerate(row))
                for row in rows
            ]
        return json.dumps(rows, separators=(",", ":"))

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
        self._complete = False
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
            for table in self.columns:
                partitioned = table not in UNPARTITIONED
                if not partitioned and not metadata:
                    continue
                if partitioned and ps is not None and not ps:
                    continue
                if partitioned:
                    local.execute(f"DELETE FROM {table} WHERE {local_where}", args)
                    self._copy(conn, local, table, where, args)
                else:
                    local.execute(f"DELETE FROM {table}")
                    self._copy(conn, local, table, "TRUE", [])
        self._raise_sequences(local)

    # -- introspection ----------------------------------------------------------------------------

    def query(
        self, sql: str, *, live: Iterable[str] = (), timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """``POST /query`` over the whole store. A working copy that holds every partition (a
        single node) answers it; otherwise the tables the query's views read are copied from
        one PostgreSQL snapshot into a scratch SQLite file, and the same views, functions and
        read-only rules run there (so any node sees every partition; the copy costs time in
        proportion to those tables, within the query's timeout)."""
        if self._complete:
            return super().query(sql, live=live, timeout=timeout)
        deadline = time.monotonic() + timeout
        words = set(re.findall(r"[a-z_]+", sql.lower()))
        tables = sorted({t for view, ts in _VIEW_TABLES.items() if view in words for t in ts})
        fd, scratch = tempfile.mkstemp(
            prefix="query-", suffix=".sqlite3", dir=os.path.dirname(os.path.abspath(self.path))
        )
        os.close(fd)
        try:
            local = sqlite3.connect(scratch, isolation_level=None)
            try:
                local.execute("PRAGMA journal_mode=OFF")
                local.execute("PRAGMA synchronous=OFF")
                migrate_sqlite(local)
                with _connect(self.url) as conn, conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    conn.execute("SELECT set_config('statement_timeout', %s, true)",
                                 (str(int(timeout * 1000)),))  # fmt: skip
                    for table in tables:
                        self._copy(conn, local, table, "TRUE", [])
            finally:
                local.close()
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueryError(f"the query took longer than {timeout:g}s and was stopped")
            return run_query(scratch, sql, live=live, timeout=left)
        finally:
            for suffix in ("", "-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(f"{scratch}{suffix}")

    def _copy(
        self, conn: Any, local: sqlite3.Connection, table: str, where: str, args: list[int]
    ) -> None:
        """Insert ``table``'s rows that ``where`` matches in PostgreSQL into ``local``."""
        columns = self.columns[table]
        names = ", ".join(name for name, _ in columns)
        marks = ", ".join("?" * len(columns))
        insert = f"INSERT OR REPLACE INTO {table} ({names}) VALUES ({marks})"
        with conn.cursor(binary=True) as cursor:
            cursor.execute(f"SELECT {names} FROM {table} WHERE {where}", args)
            while rows := cursor.fetchmany(_LOAD_CHUNK):
                local.execute("BEGIN IMMEDIATE")
                local.executemany(insert, rows)
                local.execute("COMMIT")

    def _raise_sequences(self, local: sqlite3.Connection) -> None:
        """Timer and inbox sequence numbers continue above every loaded row's."""
        timers = int(local.execute("SELECT COALESCE(MAX(seq), 0) FROM timers").fetchone()[0])
        inbox = int(local.execute("SELECT COALESCE(MAX(seq), 0) FROM inbox").fetchone()[0])
        self.raise_sequences(timers, inbox)


EXIT_FENCED = 75
"""The exit status of a server whose store another server took over (``exit_when_fenced``)."""
_NUL_SQLSTATES = ("22021", "22P05")  # character not in repertoire; unsupported \u0000


class _NulInText(Exception):
    """PostgreSQL refused a text value: it holds NUL (SQLite's text may)."""


def _without_nul(values: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in values)


_VIEW_TABLES = {
    "sys_invocation": ("invocations",),
    "sys_invocation_status": ("invocations",),
    "sys_journal": ("journal",),
    "state": ("state",),
    "sys_service": ("services", "deployments"),
    "sys_deployment": ("deployments",),
    "sys_inbox": ("inbox",),
    "sys_promise": ("promises",),
}
"""The tables each of /query's views reads (storage/query.py)."""


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


def _from_json(index: int, pg_type: str) -> str:
    """Column ``index`` of the JSON array ``r`` as ``pg_type`` (bytea travels as hex)."""
    if pg_type == "bytea":
        return f"decode(r->>{index}, 'hex')"
    if pg_type == "text":
        return f"r->>{index}"
    return f"(r->>{index})::{pg_type}"


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
