"""The SQLite store: versioned schema, reopening, and what a crash leaves behind."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from perdure.protocol import InvocationId
from perdure.server.records import Invocation, Result, Status, TimerKind
from perdure.server.storage import SCHEMA_VERSION, SchemaError, Store
from perdure.server.storage.schema import MIGRATIONS
from perdure.server.storage.sqlite import sql_pk


def invocation() -> Invocation:
    return Invocation(InvocationId.new(), "S", "h", "", "SERVICE", None, Status.INVOKED, 1, 1, 1)


def test_a_new_store_is_at_the_latest_schema_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = Store(path)
    inv = invocation()
    store.begin()
    store.put_invocation(inv)
    store.add_timer(5, inv.id, TimerKind.SLEEP, 1)
    store.commit()
    store.close()
    again = Store(path)
    assert again.get_invocation(inv.id) == inv
    assert again.next_timer_at() == 5
    version = again.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    assert int(version[0]) == SCHEMA_VERSION
    assert again.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_uncommitted_writes_are_gone_after_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = Store(path)
    kept, lost = invocation(), invocation()
    store.begin()
    store.put_invocation(kept)
    store.commit()
    store.begin()
    store.put_invocation(lost)  # never committed: the process "dies" here
    reader = Store(path)
    assert reader.get_invocation(kept.id) is not None
    assert reader.get_invocation(lost.id) is None


def test_a_store_from_a_newer_perdure_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "db"
    Store(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(SchemaError, match="999"):
        Store(path)


def test_partition_keys_above_2_63_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    inv = invocation()
    inv.id = InvocationId((1 << 64) - 1, 42)
    store.begin()
    store.put_invocation(inv)
    store.commit()
    assert store.get_invocation(inv.id) == inv


def test_a_terminal_failure_keeps_its_metadata(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    inv = invocation()
    inv.status = Status.COMPLETED
    inv.result = Result.failure(418, "teapot", (("reason", "asked"), ("b", "2")))
    store.begin()
    store.put_invocation(inv)
    store.commit()
    store.close()
    loaded = Store(tmp_path / "db").get_invocation(inv.id)
    assert loaded is not None and loaded.result == inv.result


def test_a_schema_1_store_is_migrated_and_keeps_its_invocations(tmp_path: Path) -> None:
    path = tmp_path / "db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    inv_id = InvocationId.new()
    db.execute(
        "INSERT INTO invocations (pk, id, service, handler, key, service_ty, status, created_at, "
        "modified_at, last_append_at, result_kind, failure_code, failure_message) "
        "VALUES (?, ?, 'S', 'h', '', 'SERVICE', 'completed', 1, 1, 1, 'failure', 500, 'boom')",
        (sql_pk(inv_id.partition_key), str(inv_id)),
    )
    db.close()
    loaded = Store(path).get_invocation(inv_id)
    assert loaded is not None and loaded.result == Result.failure(500, "boom")
