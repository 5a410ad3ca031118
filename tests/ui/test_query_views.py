"""The /query views stay fast on a big store: timestamps are formatted in SQL (not a Python
function per row) and a lookup by (partition_key, id) -- what the UI sends -- uses the primary
key, the parent's target included."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from perdure.protocol import InvocationId
from perdure.server.storage import Store
from perdure.server.storage.query import _connect, _id_pk, _ts, rfc3339


@pytest.mark.parametrize("ms", [0, 1, 999, 1_000, 1_767_225_599_999, 1_800_000_000_123])
def test_sql_timestamps_match_rfc3339(ms: int) -> None:
    db = sqlite3.connect(":memory:")
    (text,) = db.execute(f"SELECT {_ts('?1')}", (ms,)).fetchone()
    assert text == rfc3339(ms)
    assert db.execute(f"SELECT {_ts('NULL')}").fetchone() == (None,)


def test_an_invocation_by_partition_key_and_id_is_a_key_lookup(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    Store(path).close()
    invocation_id = InvocationId.new()
    db = _connect(str(path), frozenset())
    plan = db.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM sys_invocation "
        f"WHERE partition_key = {_id_pk(str(invocation_id))} AND id = '{invocation_id}'"
    ).fetchall()
    details = [row[3] for row in plan]
    assert any("PRIMARY KEY" in d for d in details), details
    assert not [d for d in details if d.startswith("SCAN")], details
    db.close()


def test_the_partition_key_of_an_id_is_the_stored_one() -> None:
    from perdure.server.storage.sqlite import sql_pk

    for _ in range(50):
        invocation_id = InvocationId.new()
        assert _id_pk(str(invocation_id)) == sql_pk(invocation_id.partition_key)
    assert _id_pk("not-an-id") is None
    assert _id_pk(None) is None
