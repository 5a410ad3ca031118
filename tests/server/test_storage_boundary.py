"""The engine alone owns storage: no SQL in src/perdure outside server/storage/.

What counts as SQL: importing sqlite3, or a string literal with a SQL statement keyword
(SELECT, INSERT INTO, UPDATE ... SET, DELETE FROM, SAVEPOINT, RELEASE, ROLLBACK, PRAGMA, CREATE
TABLE/INDEX/VIEW). ``perdure.cli`` is exempt: its SQL is the text of ``POST /query`` requests, the
public introspection API it sends to any Restate-compatible server, not access to a store.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "perdure"
ALLOWED = (SRC / "server" / "storage", SRC / "cli")
SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|SELECT\s+\d|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|"
    r"DELETE\s+FROM|SAVEPOINT|RELEASE\s+\w+|ROLLBACK|PRAGMA|CREATE\s+(TEMP\s+)?(TABLE|INDEX|VIEW)|"
    r"BEGIN\s+(IMMEDIATE|EXCLUSIVE|DEFERRED|TRANSACTION)|COMMIT\b\s*$)",
    re.DOTALL,
)


def sql_in(source: str) -> list[str]:
    """Where ``source`` uses SQL: ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names]
            module = node.module if isinstance(node, ast.ImportFrom) else None
            if module == "sqlite3" or "sqlite3" in names:
                found.append(f"{node.lineno}: imports sqlite3")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = SQL.search(node.value)
            if match:
                found.append(f"{node.lineno}: SQL {match.group(0)[:40]!r}")
    return found


def test_the_detector_finds_sql() -> None:
    assert sql_in("import sqlite3") and sql_in("from sqlite3 import connect")
    assert sql_in('db.execute(f"SAVEPOINT {name}")')
    assert sql_in('q = "SELECT id FROM invocations WHERE pk = ?"')
    assert sql_in('q = "DELETE FROM timers"') and sql_in('q = "PRAGMA journal_mode=WAL"')
    assert not sql_in('if method == "DELETE": pass')  # an HTTP method is not SQL
    assert not sql_in('"""Select what to run, then update the set."""')


def test_no_sql_outside_storage() -> None:
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if any(path.is_relative_to(allowed) for allowed in ALLOWED):
            continue
        offenders += [f"{path.relative_to(SRC)}:{hit}" for hit in sql_in(path.read_text())]
    assert offenders == [], "SQL belongs in perdure/server/storage/ (ask the engine instead)"
