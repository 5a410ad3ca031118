"""``POST /query`` reads the system views with plain functions, and nothing else: no native
pointers (fts3_tokenizer), no extensions, no raw base tables, no giant values."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from perdure.server.app import open_runtime
from perdure.server.storage.query import QueryError, run_query


@pytest.fixture
def db(tmp_path: Path) -> str:
    runtime = open_runtime(tmp_path, inactivity_timeout=None, ingress_url="http://127.0.0.1:1")
    path = str(runtime.db_path)
    asyncio.run(runtime.stop(0))
    return path


@pytest.mark.parametrize(
    ("sql", "refused"),
    [
        ("SELECT fts3_tokenizer('simple')", "fts3_tokenizer"),
        ("SELECT fts3_tokenizer('simple', x'0000000000000000')", "fts3_tokenizer"),
        ("SELECT load_extension('/tmp/x.so')", "load_extension"),
        ("SELECT sqlite_compileoption_get(0)", "sqlite_compileoption_get"),
        ("SELECT zeroblob(2000000000)", "zeroblob"),
        ("SELECT * FROM invocations", "invocations"),
        ("SELECT * FROM main.state", "state"),
        ("SELECT * FROM main.timers", "timers"),
        ("SELECT sql FROM sqlite_master", "sqlite_master"),
        ("SELECT * FROM sys_invocation, pragma_table_list", "not authorized"),
    ],
)
def test_unsafe_queries_are_refused(db: str, sql: str, refused: str) -> None:
    with pytest.raises(QueryError, match=r"not authorized|access to") as error:
        run_query(db, sql)
    assert refused in str(error.value) or "not authorized" in str(error.value)


def test_the_system_views_and_plain_functions_work(db: str) -> None:
    assert run_query(db, "SELECT count(*) AS n FROM sys_invocation") == [{"n": 0}]
    rows = run_query(
        db,
        "SELECT upper('a') AS u, json_extract('{\"x\": 2}', '$.x') AS j, length(hex(x'00ff')) AS "
        "l, strftime('%Y', '2026-01-01') AS y",
    )
    assert rows == [{"u": "A", "j": 2, "l": 4, "y": "2026"}]
    assert run_query(db, "SELECT * FROM state") == []
    assert run_query(db, "SELECT id FROM sys_journal WHERE index = 0") == []
    for view in ("sys_service", "sys_deployment", "sys_inbox", "sys_promise"):
        assert run_query(db, f"SELECT * FROM {view}") == []


def test_values_are_bounded(db: str) -> None:
    with pytest.raises(QueryError, match="too big"):
        run_query(db, "SELECT replace(printf('%.*c', 1000000, 'x'), 'x', printf('%.*c', 40, 'y'))")
