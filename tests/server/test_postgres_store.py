"""PostgreSQL as the store: what reaches PostgreSQL, in how many transactions and round trips,
fencing, partitions moving in and out of a working copy, a lost connection, migrations."""

from __future__ import annotations

import contextlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from perdure.protocol import InvocationId, partition_key_of
from perdure.server.partitions import PartitionMap
from perdure.server.records import ServiceRecord, TimerKind
from perdure.server.storage import QueryError, SchemaError
from perdure.server.storage.postgres import (
    Fenced,
    PostgresStore,
    StoreUnavailable,
    partition_ranges,
)
from perdure.server.storage.postgres.schema import SCHEMA_VERSION
from tests.support.postgres import pg_url, postgres, table_rows

__all__ = ["pg_url", "postgres"]  # fixtures


@pytest.fixture
def store(pg_url: str, tmp_path: Path) -> Iterator[PostgresStore]:
    s = PostgresStore(pg_url, tmp_path / "working.sqlite3")
    yield s
    with contextlib.suppress(Exception):
        s.close()


def remote(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]


def event(store: PostgresStore, write: Any, *, keep: bool = True) -> None:
    store.begin_event()
    try:
        write()
    finally:
        store.end_event(keep=keep)


def test_a_sync_ships_committed_batches_in_one_transaction_and_one_round_trip(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    for n in range(5):
        event(store, lambda n=n: store.set_state("Counter", f"k{n}", b"count", str(n).encode()))
        event(store, lambda n=n: store.put_service(ServiceRecord(f"S{n}", 1, "dp", "{}", "{}")))
        store.commit()
    assert remote(pg_url, "SELECT count(*) FROM state") == [(0,)]  # not durable before sync

    trace = tmp_path / "trace"
    with open(trace, "w") as out:
        store._pg.pgconn.trace(out.fileno())
        store.sync()
        store._pg.pgconn.untrace()
    messages = [line.split("\t")[1:4:2] for line in trace.read_text().splitlines()]
    assert messages.count(["F", "Sync"]) == 1  # the whole transaction: one round trip
    assert messages.count(["B", "ReadyForQuery"]) == 1
    assert store.stats.transactions == 1
    assert remote(pg_url, "SELECT key, value FROM state ORDER BY key") == [
        (f"k{n}", str(n).encode()) for n in range(5)
    ]
    assert len(remote(pg_url, "SELECT name FROM services")) == 5


def test_only_the_last_image_of_a_row_ships_and_a_row_born_and_gone_ships_nothing(
    store: PostgresStore, pg_url: str
) -> None:
    inv = InvocationId.new()
    for at in (100, 200):
        event(store, lambda at=at: store.set_state("Counter", "k", b"v", str(at).encode()))
        event(store, lambda at=at: store.add_timer(at, inv, TimerKind.SLEEP, 1))
        store.commit()
    event(store, lambda: store.delete_timers_of(inv))
    store.commit()
    store.sync()
    assert store.stats.rows == 1  # one state row; the two timers never left the node
    assert remote(pg_url, "SELECT value FROM state") == [(b"200",)]
    assert remote(pg_url, "SELECT count(*) FROM timers") == [(0,)]


def test_a_rolled_back_event_is_not_shipped(store: PostgresStore, pg_url: str) -> None:
    event(store, lambda: store.set_state("Counter", "kept", b"v", b"1"))

    def fails() -> None:
        store.set_state("Counter", "kept", b"v", b"overwritten")
        store.set_state("Counter", "undone", b"v", b"2")

    event(store, fails, keep=False)
    store.commit()
    store.sync()
    assert remote(pg_url, "SELECT key, value FROM state") == [("kept", b"1")]


def test_a_second_store_on_the_database_fences_the_first(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    event(store, lambda: store.set_state("Counter", "a", b"v", b"1"))
    store.commit()
    store.sync()
    successor = PostgresStore(pg_url, tmp_path / "successor.sqlite3")
    assert successor.get_state_value("Counter", "a", b"v") == b"1"
    event(store, lambda: store.set_state("Counter", "a", b"v", b"stale"))
    store.commit()
    with pytest.raises(Fenced, match="another perdure server"):
        store.sync()
    assert remote(pg_url, "SELECT value FROM state") == [(b"1",)]  # nothing written
    successor.close()


def test_a_fenced_server_exits_at_once(pg_url: str, tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from perdure.server.storage.postgres import PostgresStore\n"
        "s = PostgresStore(sys.argv[1], sys.argv[2], exit_when_fenced=True)\n"
        "PostgresStore(sys.argv[1], sys.argv[2] + '.2')\n"  # takes the store over
        "s.begin_event(); s.set_state('C', 'k', b'v', b'x'); s.end_event(keep=True); s.commit()\n"
        "s.sync()\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, pg_url, str(tmp_path / "w.sqlite3")],
                          check=False, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 75, done.stderr
    assert "took over" in done.stderr and "not reached" not in done.stdout


def test_a_restart_rebuilds_the_working_copy_from_postgres_only(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    event(store, lambda: store.set_state("Counter", "durable", b"v", b"1"))
    store.commit()
    store.sync()
    event(store, lambda: store.set_state("Counter", "never-synced", b"v", b"2"))
    store.commit()  # committed locally, then the process dies before the sync
    store.db.close()
    again = PostgresStore(pg_url, tmp_path / "working.sqlite3")
    assert again.get_state("Counter", "durable") == [(b"v", b"1")]
    assert again.get_state("Counter", "never-synced") == []
    again.close()


def test_a_lost_connection_delays_the_sync_and_loses_nothing(
    store: PostgresStore, pg_url: str
) -> None:
    event(store, lambda: store.set_state("Counter", "a", b"v", b"1"))
    store.commit()
    pid = store._pg.info.backend_pid
    remote(pg_url, "SELECT pg_terminate_backend(%s)", pid)
    with pytest.raises(psycopg.OperationalError):
        store.sync()
    event(store, lambda: store.set_state("Counter", "b", b"v", b"2"))
    store.commit()
    store.sync()  # reconnects, ships both
    assert remote(pg_url, "SELECT key FROM state ORDER BY key") == [("a",), ("b",)]


def test_nul_in_text_does_not_block_the_store(store: PostgresStore, pg_url: str) -> None:
    event(store, lambda: store.set_state("Counter", "a\x00b", b"v", b"1"))
    event(store, lambda: store.set_state("Counter", "c", b"v", b"2"))
    store.commit()
    store.sync()
    assert remote(pg_url, "SELECT key FROM state ORDER BY key") == [("a\ufffdb",), ("c",)]
    event(store, lambda: store.clear_all_state("Counter", "a\x00b"))
    store.commit()
    store.sync()
    assert remote(pg_url, "SELECT key FROM state ORDER BY key") == [("c",)]


def test_partitions_load_into_and_drop_out_of_a_working_copy(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    keys = [f"key{n}" for n in range(64)]
    for key in keys:
        event(store, lambda key=key: store.set_state("Counter", key, b"v", key.encode()))
        event(
            store,
            lambda key=key: store.push_inbox(
                "Counter", key, InvocationId.new(partition_key_of(key))
            ),
        )
    store.commit()
    store.sync()
    count = store.partition_total
    node = PostgresStore(pg_url, tmp_path / "node.sqlite3", owned=(), fence=_NoFence())
    assert table_rows(node.db)["state"] == []
    node.load_partitions([0, 5, count - 1])

    def partition(key: str) -> int:
        return PartitionMap(count).partition_of(partition_key_of(key))

    loaded = {row[2] for row in table_rows(node.db)["state"]}
    assert loaded == {k for k in keys if partition(k) in {0, 5, count - 1}}
    assert loaded  # the keys spread over the partitions
    seq = max(row[3] for row in table_rows(node.db)["inbox"])
    node.begin()
    node.push_inbox("Counter", "x", InvocationId.new(partition_key_of("x")))  # continues above
    assert max(row[3] for row in table_rows(node.db)["inbox"]) > seq
    node.rollback()
    node.drop_partitions([5])
    assert {row[2] for row in table_rows(node.db)["state"]} == {
        k for k in keys if partition(k) in {0, count - 1}
    }
    node.close()


class _NoFence:
    def check(self, conn: Any, partitions: frozenset[int]) -> None:
        pass


def test_partition_ranges_cover_the_key_space_once() -> None:
    for count in (1, 3, 16):
        spans = sorted(s for p in range(count) for s in partition_ranges([p], count))
        assert spans[0][0] == -(1 << 63) and spans[-1][1] == (1 << 63) - 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(spans))
    assert partition_ranges(range(16), 16) == [(0, (1 << 63) - 1), (-(1 << 63), -1)]


def test_the_schema_is_versioned_and_a_newer_one_refused(pg_url: str, tmp_path: Path) -> None:
    PostgresStore(pg_url, tmp_path / "a.sqlite3").close()
    assert remote(pg_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]
    with psycopg.connect(pg_url) as conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="newer perdure"):
        PostgresStore(pg_url, tmp_path / "b.sqlite3")


def test_an_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"cannot connect to PostgreSQL .*:\*\*\*@"):
        PostgresStore("postgresql://me:secret@127.0.0.1:1/db", tmp_path / "w.sqlite3")


def test_query_on_a_node_without_partitions_sees_the_whole_store(
    store: PostgresStore, pg_url: str, tmp_path: Path
) -> None:
    for n in range(20):
        event(store, lambda n=n: store.set_state("Counter", f"k{n}", b"count", str(n).encode()))
    event(store, lambda: store.put_service(ServiceRecord("Counter", 1, "dp", "{}", "{}")))
    store.commit()
    store.sync()
    node = PostgresStore(pg_url, tmp_path / "node.sqlite3", owned=(), fence=_NoFence())
    rows = node.query("SELECT count(*) AS n, sum(CAST(value_utf8 AS INTEGER)) AS total FROM state")
    assert rows == [{"n": 20, "total": sum(range(20))}]
    assert node.query("SELECT name FROM sys_service") == [{"name": "Counter"}]
    with pytest.raises(QueryError):
        node.query("DELETE FROM state")
    assert not list(tmp_path.glob("query-*"))  # the scratch copy is gone
    node.close()


@pytest.mark.parametrize(
    ("store", "status", "message"),
    [
        ("mysql://db/x", 2, "--store: 'mysql://db/x' is not a PostgreSQL URL"),
        ("postgresql://me:pw@127.0.0.1:1/db", 1, "cannot connect to PostgreSQL"),
    ],
)
def test_a_bad_store_flag_is_a_clear_error(
    tmp_path: Path, store: str, status: int, message: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "perdure.cli", "server", "--store", store,
         "--data-dir", str(tmp_path / "data"), "--ingress-bind", "127.0.0.1:0",
         "--admin-bind", "127.0.0.1:0"],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == status
    assert message in done.stderr
    assert "Traceback" not in done.stderr and "pw" not in done.stderr
