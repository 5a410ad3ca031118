"""Running one ``POST /query`` statement over Restate's system tables, on perdure's store (the
SQL side of introspection; ``perdure.server.introspection`` decodes journal entries for it).

Each query gets its own SQLite connection opened ``mode=ro`` (the engine's connection never sees
it), TEMP views named and shaped like Restate's tables (``sys_invocation``, ``sys_journal``,
``state``, ...), Python functions that decode what SQL cannot (journal frames, timestamps,
UTF-8), and an authorizer that refuses anything but reading. The caller runs it in a thread.

What only the invoker knows -- which invocations have an attempt in flight -- is passed in as a
snapshot (``live``) and read through the ``perdure_live(id)`` function, so ``sys_invocation``
can derive ``running`` as the official server does.
"""

from __future__ import annotations

import datetime
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any

from perdure.protocol import InvalidIdError, InvocationId
from perdure.server.introspection import journal

# Columns whose SQLite integers are booleans in Restate's schema.
_BOOLEAN_COLUMNS = frozenset({"public", "completed"})


def _ts(column: str) -> str:
    """A millisecond column as RFC 3339 (``2026-01-02T03:04:05.678Z``, as ``rfc3339``), in SQL:
    a Python function per row made sorting a million invocations by time take seconds."""
    return (
        f"strftime('%Y-%m-%dT%H:%M:%S', {column} / 1000, 'unixepoch') "
        f"|| printf('.%03dZ', {column} % 1000)"
    )


_TY = (
    "CASE {0} WHEN 'SERVICE' THEN 'service' WHEN 'VIRTUAL_OBJECT' THEN 'virtual_object' "
    "WHEN 'WORKFLOW' THEN 'workflow' END"
)

_STATUS_COLUMNS = f"""
    i.pk AS partition_key,
    i.id AS id,
    {{status}} AS status,
    CASE WHEN i.service_ty = 'SERVICE' THEN i.service || '/' || i.handler
         ELSE i.service || '/' || i.key || '/' || i.handler END AS target,
    i.service AS target_service_name,
    CASE WHEN i.service_ty = 'SERVICE' THEN NULL ELSE i.key END AS target_service_key,
    i.handler AS target_handler_name,
    {_TY.format("i.service_ty")} AS target_service_ty,
    i.idempotency_key AS idempotency_key,
    CASE WHEN i.invoked_by IS NULL THEN 'ingress' ELSE 'service' END AS invoked_by,
    i.invoked_by AS invoked_by_id,
    (SELECT CASE WHEN p.service_ty = 'SERVICE' THEN p.service || '/' || p.handler
                 ELSE p.service || '/' || p.key || '/' || p.handler END
       FROM main.invocations p
       WHERE p.pk = perdure_id_pk(i.invoked_by) AND p.id = i.invoked_by) AS invoked_by_target,
    i.deployment_id AS pinned_deployment_id,
    i.protocol_version AS pinned_service_protocol_version,
    i.journal_len AS journal_size,
    {_ts("i.created_at")} AS created_at,
    {_ts("i.modified_at")} AS modified_at,
    CASE WHEN i.status = 'inboxed' THEN {_ts("i.modified_at")} END AS inboxed_at,
    CASE WHEN i.status = 'scheduled' THEN {_ts("i.execution_time")} END AS scheduled_start_at,
    {_ts("i.completed_at")} AS completed_at,
    CASE WHEN i.retry_count > 0 THEN i.retry_count END AS retry_count,
    {_ts("i.next_retry_at")} AS next_retry_at,
    i.last_failure AS last_failure,
    CASE WHEN i.result_kind = 'value' THEN 'success'
         WHEN i.result_kind = 'failure' THEN 'failure' END AS completion_result,
    CASE WHEN i.result_kind = 'failure'
         THEN '[' || i.failure_code || '] ' || i.failure_message END AS completion_failure,
    {_ts("i.expires_at")} AS completion_expires_at
"""

# The raw status (perdure keeps backing-off apart; Restate's raw status calls it invoked) and the
# status sys_invocation derives from it and from the invoker's live attempts.
_RAW_STATUS = "CASE WHEN i.status = 'backing-off' THEN 'invoked' ELSE i.status END"
_DERIVED_STATUS = """CASE
    WHEN i.status = 'inboxed' THEN 'pending'
    WHEN i.status = 'invoked' AND perdure_live(i.id) THEN 'running'
    WHEN i.status = 'backing-off' OR (i.status = 'invoked' AND i.retry_count > 0)
        THEN 'backing-off'
    WHEN i.status = 'invoked' THEN 'ready'
    ELSE i.status END"""

# A service's type is in its deployment's manifest.
_SERVICE_TY = """(SELECT json_extract(e.value, '$.ty')
    FROM main.deployments d, json_each(d.manifest, '$.services') e
    WHERE d.id = s.deployment_id AND json_extract(e.value, '$.name') = s.name)"""

_VIEWS = {
    "sys_invocation_status": "SELECT "
    + _STATUS_COLUMNS.replace("{status}", _RAW_STATUS)
    + " FROM main.invocations i",
    "sys_invocation": "SELECT "
    + _STATUS_COLUMNS.replace("{status}", _DERIVED_STATUS)
    + """, CASE WHEN perdure_live(i.id) THEN i.deployment_id END AS last_attempt_deployment_id
        FROM main.invocations i""",
    "sys_journal": f"""
        SELECT j.pk AS partition_key, j.id AS id, j.idx AS "index",
            perdure_entry_type(j.type) AS entry_type,
            perdure_entry_name(j.type, j.payload) AS name,
            CAST(NULL AS INTEGER) AS completed, CAST(NULL AS TEXT) AS invoked_id,
            CAST(NULL AS TEXT) AS invoked_target, CAST(NULL AS TEXT) AS sleep_wakeup_at,
            CAST(NULL AS TEXT) AS promise_name,
            j.payload AS raw, length(j.payload) AS raw_length, 2 AS version,
            perdure_entry_json(j.type, j.payload) AS entry_json,
            perdure_entry_lite_json(j.type, j.payload) AS entry_lite_json,
            {_ts("j.appended_at")} AS appended_at
        FROM main.journal j
    """,
    "state": """
        SELECT pk AS partition_key, service AS service_name, key AS service_key,
            perdure_utf8(state_key) AS key, length(state_key) AS key_length,
            perdure_utf8(value) AS value_utf8, value AS value, length(value) AS value_length
        FROM main.state
    """,
    "sys_service": f"""
        SELECT name, revision,
            COALESCE(json_extract(overrides, '$.public'), 1) AS public,
            {_TY.format(_SERVICE_TY)} AS ty,
            deployment_id
        FROM main.services s
    """,
    "sys_deployment": f"""
        SELECT id, 'http' AS ty, uri AS endpoint, {_ts("created_at")} AS created_at,
            min_protocol_version AS min_service_protocol_version,
            max_protocol_version AS max_service_protocol_version
        FROM main.deployments
    """,
    "sys_inbox": """
        SELECT pk AS partition_key, service AS service_name, key AS service_key, id,
            seq AS sequence_number
        FROM main.inbox WHERE id LIKE 'inv\\_%' ESCAPE '\\'
    """,
    "sys_promise": """
        SELECT pk AS partition_key, service AS service_name, key AS service_key, name AS key,
            1 AS completed,
            CASE WHEN result_kind = 'value' THEN value END AS completion_success_value,
            CASE WHEN result_kind = 'value' THEN perdure_utf8(value) END
                AS completion_success_value_utf8,
            CASE WHEN result_kind = 'failure'
                 THEN '[' || failure_code || '] ' || failure_message END AS completion_failure
        FROM main.promises
    """,
}

TABLES = tuple(_VIEWS)

# What a query may do: select, read the system views, and call the functions below; anything
# else (writes, ATTACH, PRAGMA, load_extension, reading the store's own tables) is refused.
_SELECTING = {sqlite3.SQLITE_SELECT, getattr(sqlite3, "SQLITE_RECURSIVE", 33)}

# The functions a query may call: SQLite's pure scalar, aggregate, window, date, math and JSON
# functions, and perdure's own. Anything else is refused, notably fts3_tokenizer (it hands out
# and accepts native pointers) and load_extension.
_FUNCTION_GROUPS = (
    "abs char coalesce concat concat_ws format glob hex ifnull iif instr length like likelihood "
    "likely lower ltrim max min nullif octet_length printf quote random replace round rtrim sign "
    "soundex substr substring trim typeof unhex unicode unlikely upper",
    "avg count group_concat string_agg sum total",
    "row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value "
    "nth_value",
    "date time datetime julianday unixepoch strftime timediff current_date current_time "
    "current_timestamp",
    "acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10 "
    "log2 mod pi pow power radians sin sinh sqrt tan tanh trunc",
    "json json_array json_array_length json_error_position json_extract json_insert json_object "
    "json_patch json_pretty json_quote json_remove json_replace json_set json_type json_valid "
    "json_group_array json_group_object",
    "perdure_ts perdure_utf8 perdure_live perdure_entry_type perdure_entry_name "
    "perdure_entry_json perdure_entry_lite_json perdure_id_pk",
)
SAFE_FUNCTIONS = frozenset(name for group in _FUNCTION_GROUPS for name in group.split(" "))

MAX_VALUE_BYTES = 16 * 1024 * 1024
"""The largest string or blob a query may build (zeroblob, printf and replace could otherwise
make the server allocate gigabytes)."""


def _authorize(action: int, arg1: str | None, arg2: str | None, db: str | None,
               view: str | None) -> int:  # fmt: skip
    if action in _SELECTING:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_OK if (arg2 or "").lower() in SAFE_FUNCTIONS else sqlite3.SQLITE_DENY
    # Reads: a system view's own columns, a base table read on behalf of a view, or a row count
    # (no column); a query's direct reads of the store's tables are refused.
    if action == sqlite3.SQLITE_READ and (db == "temp" or view is not None or arg2 == ""):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


class QueryError(Exception):
    """The query is invalid, not read-only, or too slow; the message says which."""


def rfc3339(ms: int | None) -> str | None:
    """Milliseconds since the epoch as Restate writes timestamps: ``2026-01-02T03:04:05.678Z``."""
    if ms is None:
        return None
    moment = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def _utf8(value: bytes | None) -> str | None:
    if value is None:
        return None
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        return None


def _id_pk(text: str | None) -> int | None:
    """The stored partition key of an invocation id (so that a lookup by id uses the key)."""
    if text is None:
        return None
    try:
        key = InvocationId.parse(text).partition_key
    except InvalidIdError:
        return None
    return key - (1 << 64) if key >= 1 << 63 else key  # stored as a signed 64-bit integer


# The tables that hold partitioned rows: with several workers' stores, a query reads each of them
# as the union of every store's (deployments and services are the same in every store).
_PARTITIONED = ("invocations", "journal", "state", "inbox", "promises")


def _union_views(db: sqlite3.Connection, others: Sequence[str]) -> dict[str, str]:
    """Attach the other stores read-only (``w1``, ``w2``, ...); returns what replaces
    ``main.TABLE`` in the views: the union of every store's rows (inline, so that no object a
    query could read directly is added)."""
    for n, path in enumerate(others, 1):
        db.execute(f"ATTACH DATABASE ? AS w{n}", (f"file:{path}?mode=ro",))
    names = ["main", *(f"w{n}" for n in range(1, len(others) + 1))]
    return {
        f"main.{table}": "("
        + " UNION ALL ".join(f"SELECT * FROM {name}.{table}" for name in names)
        + ")"
        for table in _PARTITIONED
    }


def _connect(db_path: str, live: frozenset[str], others: Sequence[str] = ()) -> sqlite3.Connection:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, isolation_level=None,
                         check_same_thread=False)  # fmt: skip
    replaced = _union_views(db, others) if others else {}
    db.create_function("perdure_ts", 1, rfc3339, deterministic=True)
    db.create_function("perdure_utf8", 1, _utf8, deterministic=True)
    db.create_function("perdure_live", 1, lambda i: i in live)
    db.create_function("perdure_id_pk", 1, _id_pk, deterministic=True)
    db.create_function("perdure_entry_type", 1, journal.entry_type, deterministic=True)
    db.create_function("perdure_entry_name", 2, journal.entry_name, deterministic=True)
    db.create_function("perdure_entry_json", 2, journal.entry_json, deterministic=True)
    db.create_function("perdure_entry_lite_json", 2, journal.entry_lite_json, deterministic=True)
    for name, view in _VIEWS.items():
        sql = view
        for table, union in replaced.items():
            sql = re.sub(rf"\b{re.escape(table)}\b", union, sql)
        db.execute(f"CREATE TEMP VIEW {name} AS {sql}")
    db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    db.set_authorizer(_authorize)
    return db


_STRING_LITERAL = re.compile(r"('(?:[^']|'')*')")
_BARE_INDEX = re.compile(r'(?<![\w"`])index(?![\w"`])', re.IGNORECASE)


def dialect(sql: str) -> str:
    """DataFusion accepts ``index`` (a sys_journal column) unquoted; SQLite needs it quoted."""
    parts = _STRING_LITERAL.split(sql)
    return "".join(
        part if n % 2 else _BARE_INDEX.sub('"index"', part) for n, part in enumerate(parts)
    )


def _json_value(column: str, value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if column in _BOOLEAN_COLUMNS and value in (0, 1):
        return bool(value)
    return value


def run_query(
    db_path: str,
    sql: str,
    *,
    live: Iterable[str] = (),
    timeout: float = 10.0,
    others: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Run one read-only statement; rows as Restate's JSON (nulls omitted, bytes as hex).
    ``others``: more stores (the other workers' files) whose partitioned rows the system views
    include."""
    deadline = time.monotonic() + timeout
    db = _connect(db_path, frozenset(live), others)
    db.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        cursor = db.execute(dialect(sql))
        columns = [d[0] for d in cursor.description or ()]
        return [
            {c: _json_value(c, v) for c, v in zip(columns, row, strict=True) if v is not None}
            for row in cursor.fetchall()
        ]
    except sqlite3.DatabaseError as exc:
        message = str(exc)
        if message == "interrupted":
            message = f"the query took longer than {timeout:g}s and was stopped"
        elif message.startswith(("not authorized", "access to ")):
            message = (
                f"{message}: /query is read-only; it may SELECT from the system tables "
                f"({', '.join(TABLES)}) and call SQLite's plain functions"
            )
        raise QueryError(message) from None
    except sqlite3.ProgrammingError as exc:  # e.g. several statements at once
        raise QueryError(str(exc)) from None
    except sqlite3.Warning as exc:  # "You can only execute one statement at a time."
        raise QueryError(str(exc)) from None
    finally:
        db.close()
