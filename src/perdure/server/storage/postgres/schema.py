"""The PostgreSQL schema: the SQLite schema's tables (storage/schema.py) with PostgreSQL types,
under the same versioned migrations, so that migration N means the same tables in both stores.

Types: SQLite INTEGER is BIGINT, BLOB is BYTEA, TEXT stays TEXT. ``meta`` holds the schema
version and ``writer_epoch`` (the single-node fence, see fence.py). Migrations run in one
transaction each, under an advisory lock, so nodes starting together do not race.
Append new migrations (mirroring storage/schema.py), never edit applied ones.
"""

from __future__ import annotations

from typing import Any

from perdure.server.storage.schema import MIGRATIONS as SQLITE_MIGRATIONS
from perdure.server.storage.schema import SchemaError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema (and the single-node writer fence)
    (
        """CREATE TABLE invocations (
            pk BIGINT NOT NULL, id TEXT NOT NULL,
            service TEXT NOT NULL, handler TEXT NOT NULL, key TEXT NOT NULL,
            service_ty TEXT NOT NULL, handler_ty TEXT,
            status TEXT NOT NULL, idempotency_key TEXT,
            deployment_id TEXT, protocol_version BIGINT,
            created_at BIGINT NOT NULL, modified_at BIGINT NOT NULL, execution_time BIGINT,
            retry_count BIGINT NOT NULL DEFAULT 0,
            attempts_since_progress BIGINT NOT NULL DEFAULT 0,
            last_append_at BIGINT NOT NULL, next_retry_at BIGINT, last_failure TEXT,
            awaiting TEXT, journal_len BIGINT NOT NULL DEFAULT 0,
            result_kind TEXT, result_value BYTEA, failure_code BIGINT, failure_message TEXT,
            completed_at BIGINT, expires_at BIGINT, invoked_by TEXT,
            PRIMARY KEY (pk, id))""",
        "CREATE INDEX invocations_status ON invocations (status)",
        """CREATE TABLE journal (
            pk BIGINT NOT NULL, id TEXT NOT NULL, idx BIGINT NOT NULL,
            type BIGINT NOT NULL, flags BIGINT NOT NULL, payload BYTEA NOT NULL,
            notification TEXT, appended_at BIGINT NOT NULL,
            PRIMARY KEY (pk, id, idx))""",
        """CREATE TABLE state (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL,
            state_key BYTEA NOT NULL, value BYTEA NOT NULL,
            PRIMARY KEY (pk, service, key, state_key))""",
        """CREATE TABLE locks (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key))""",
        """CREATE TABLE inbox (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, seq BIGINT NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key, seq))""",
        """CREATE TABLE timers (
            pk BIGINT NOT NULL, seq BIGINT NOT NULL, fire_at BIGINT NOT NULL,
            id TEXT NOT NULL, kind TEXT NOT NULL, completion_id BIGINT,
            PRIMARY KEY (pk, seq))""",
        """CREATE TABLE sinks (
            pk BIGINT NOT NULL, id TEXT NOT NULL, caller TEXT NOT NULL,
            completion_id BIGINT NOT NULL, notification_type BIGINT NOT NULL,
            PRIMARY KEY (pk, id, caller, completion_id))""",
        """CREATE TABLE idempotency (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, handler TEXT NOT NULL,
            idempotency_key TEXT NOT NULL, id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key, handler, idempotency_key))""",
        """CREATE TABLE promises (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            result_kind TEXT NOT NULL, value BYTEA, failure_code BIGINT, failure_message TEXT,
            PRIMARY KEY (pk, service, key, name))""",
        """CREATE TABLE promise_listeners (
            pk BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            id TEXT NOT NULL, completion_id BIGINT NOT NULL,
            PRIMARY KEY (pk, service, key, name, id, completion_id))""",
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY, uri TEXT NOT NULL, use_http_11 BIGINT NOT NULL,
            additional_headers TEXT NOT NULL, metadata TEXT NOT NULL,
            protocol_mode TEXT NOT NULL, min_protocol_version BIGINT NOT NULL,
            max_protocol_version BIGINT NOT NULL, sdk_version TEXT,
            manifest TEXT NOT NULL, created_at BIGINT NOT NULL)""",
        """CREATE TABLE services (
            name TEXT PRIMARY KEY, revision BIGINT NOT NULL, deployment_id TEXT NOT NULL,
            manifest TEXT NOT NULL, overrides TEXT NOT NULL)""",
        "INSERT INTO meta (key, value) VALUES ('writer_epoch', '0')",
        """CREATE FUNCTION perdure_check_writer(held BIGINT) RETURNS VOID
            LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM 1 FROM meta WHERE key = 'writer_epoch' AND value = held::TEXT FOR SHARE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'fenced: another perdure server took over this store'
                        USING ERRCODE = 'PD001';
                END IF;
            END $$""",
    ),
    # 2: terminal errors keep their metadata (JSON list of [key, value] pairs)
    (
        "ALTER TABLE invocations ADD COLUMN failure_metadata TEXT",
        "ALTER TABLE promises ADD COLUMN failure_metadata TEXT",
    ),
    # 3: admin state edits queued behind an object key's lock (their inbox entry is "edit:<seq>")
    (
        """CREATE TABLE state_edits (
            pk BIGINT NOT NULL, seq BIGINT NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL,
            new_state TEXT NOT NULL, version TEXT,
            PRIMARY KEY (pk, seq))""",
    ),
    # 4: messages between partitions (outbox, outbox_seq, dedup)
    (
        """CREATE TABLE outbox (
            pk BIGINT NOT NULL, seq BIGINT NOT NULL, target BIGINT NOT NULL,
            message BYTEA NOT NULL,
            PRIMARY KEY (pk, seq))""",
        """CREATE TABLE outbox_seq (
            pk BIGINT NOT NULL, seq BIGINT NOT NULL,
            PRIMARY KEY (pk))""",
        """CREATE TABLE dedup (
            pk BIGINT NOT NULL, source BIGINT NOT NULL, seq BIGINT NOT NULL,
            PRIMARY KEY (pk, source))""",
    ),
    # 5: the status index holds live invocations only
    (
        "DROP INDEX invocations_status",
        "CREATE INDEX invocations_live ON invocations (status) WHERE status <> 'completed'",
    ),
    # 6: retention ends found by the completed invocations' ``expires_at``
    ("CREATE INDEX invocations_expiry ON invocations (expires_at) WHERE status = 'completed'",),
)

SCHEMA_VERSION = len(MIGRATIONS)
assert len(SQLITE_MIGRATIONS) == SCHEMA_VERSION, "mirror every SQLite migration here"

_MIGRATION_LOCK = 0x70657264  # pg_advisory_xact_lock key: "perd"


def migrate(conn: Any) -> int:
    """Bring the schema up to date (``conn``: a psycopg connection, autocommit); returns the
    version found before migrating."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        found = int(row[0]) if row else 0
        if found > SCHEMA_VERSION:
            raise SchemaError(
                f"the PostgreSQL store has schema version {found}, this perdure knows up to "
                f"{SCHEMA_VERSION}: it was written by a newer perdure; upgrade perdure "
                "(pip install -U perdure) or use another database"
            )
        for version in range(found, SCHEMA_VERSION):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                (str(version + 1),),
            )
    return found
