"""The versioned SQLite schema and its migrations.

Every table of partitioned data carries the partition key (``pk``, the invocation id's or object
key's u64 stored as a signed 64-bit integer) as the first column of its primary key, so that a
partition can later move to another store without a schema change. Deployments and services are
cluster-wide metadata and are not partitioned.

A migration is a list of statements; ``meta.schema_version`` records how many have been applied.
Append new migrations, never edit applied ones.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the initial schema
    (
        """CREATE TABLE invocations (
            pk INTEGER NOT NULL, id TEXT NOT NULL,
            service TEXT NOT NULL, handler TEXT NOT NULL, key TEXT NOT NULL,
            service_ty TEXT NOT NULL, handler_ty TEXT,
            status TEXT NOT NULL, idempotency_key TEXT,
            deployment_id TEXT, protocol_version INTEGER,
            created_at INTEGER NOT NULL, modified_at INTEGER NOT NULL, execution_time INTEGER,
            retry_count INTEGER NOT NULL DEFAULT 0,
            attempts_since_progress INTEGER NOT NULL DEFAULT 0,
            last_append_at INTEGER NOT NULL, next_retry_at INTEGER, last_failure TEXT,
            awaiting TEXT, journal_len INTEGER NOT NULL DEFAULT 0,
            result_kind TEXT, result_value BLOB, failure_code INTEGER, failure_message TEXT,
            completed_at INTEGER, expires_at INTEGER, invoked_by TEXT,
            PRIMARY KEY (pk, id)) WITHOUT ROWID""",
        "CREATE INDEX invocations_status ON invocations (status)",
        """CREATE TABLE journal (
            pk INTEGER NOT NULL, id TEXT NOT NULL, idx INTEGER NOT NULL,
            type INTEGER NOT NULL, flags INTEGER NOT NULL, payload BLOB NOT NULL,
            notification TEXT, appended_at INTEGER NOT NULL,
            PRIMARY KEY (pk, id, idx)) WITHOUT ROWID""",
        """CREATE INDEX journal_notifications ON journal (pk, id, notification)
            WHERE notification IS NOT NULL""",
        """CREATE TABLE state (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL,
            state_key BLOB NOT NULL, value BLOB NOT NULL,
            PRIMARY KEY (pk, service, key, state_key)) WITHOUT ROWID""",
        """CREATE TABLE locks (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key)) WITHOUT ROWID""",
        """CREATE TABLE inbox (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, seq INTEGER NOT NULL,
            id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key, seq)) WITHOUT ROWID""",
        """CREATE TABLE timers (
            pk INTEGER NOT NULL, seq INTEGER NOT NULL, fire_at INTEGER NOT NULL,
            id TEXT NOT NULL, kind TEXT NOT NULL, completion_id INTEGER,
            PRIMARY KEY (pk, seq)) WITHOUT ROWID""",
        "CREATE INDEX timers_due ON timers (fire_at)",
        "CREATE INDEX timers_of ON timers (pk, id)",
        """CREATE TABLE sinks (
            pk INTEGER NOT NULL, id TEXT NOT NULL, caller TEXT NOT NULL,
            completion_id INTEGER NOT NULL, notification_type INTEGER NOT NULL,
            PRIMARY KEY (pk, id, caller, completion_id)) WITHOUT ROWID""",
        "CREATE INDEX sinks_by_caller ON sinks (caller)",
        """CREATE TABLE idempotency (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, handler TEXT NOT NULL,
            idempotency_key TEXT NOT NULL, id TEXT NOT NULL,
            PRIMARY KEY (pk, service, key, handler, idempotency_key)) WITHOUT ROWID""",
        """CREATE TABLE promises (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            result_kind TEXT NOT NULL, value BLOB, failure_code INTEGER, failure_message TEXT,
            PRIMARY KEY (pk, service, key, name)) WITHOUT ROWID""",
        """CREATE TABLE promise_listeners (
            pk INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL, name TEXT NOT NULL,
            id TEXT NOT NULL, completion_id INTEGER NOT NULL,
            PRIMARY KEY (pk, service, key, name, id, completion_id)) WITHOUT ROWID""",
        """CREATE TABLE deployments (
            id TEXT PRIMARY KEY, uri TEXT NOT NULL, use_http_11 INTEGER NOT NULL,
            additional_headers TEXT NOT NULL, metadata TEXT NOT NULL,
            protocol_mode TEXT NOT NULL, min_protocol_version INTEGER NOT NULL,
            max_protocol_version INTEGER NOT NULL, sdk_version TEXT,
            manifest TEXT NOT NULL, created_at INTEGER NOT NULL)""",
        """CREATE TABLE services (
            name TEXT PRIMARY KEY, revision INTEGER NOT NULL, deployment_id TEXT NOT NULL,
            manifest TEXT NOT NULL, overrides TEXT NOT NULL)""",
    ),
    # 2: terminal errors keep their metadata (JSON list of [key, value] pairs)
    (
        "ALTER TABLE invocations ADD COLUMN failure_metadata TEXT",
        "ALTER TABLE promises ADD COLUMN failure_metadata TEXT",
    ),
    # 3: admin state edits queued behind an object key's lock (their inbox entry is "edit:<seq>")
    (
        """CREATE TABLE state_edits (
            pk INTEGER NOT NULL, seq INTEGER NOT NULL, service TEXT NOT NULL, key TEXT NOT NULL,
            new_state TEXT NOT NULL, version TEXT,
            PRIMARY KEY (pk, seq)) WITHOUT ROWID""",
    ),
    # 4: messages between partitions. ``outbox``: a sender partition's messages not yet
    # acknowledged (pk: the first key of the sender partition); ``outbox_seq``: the last seq each
    # sender partition gave out; ``dedup``: per receiving partition (pk: its first key), the
    # highest seq applied from each source partition.
    (
        """CREATE TABLE outbox (
            pk INTEGER NOT NULL, seq INTEGER NOT NULL, target INTEGER NOT NULL,
            message BLOB NOT NULL,
            PRIMARY KEY (pk, seq)) WITHOUT ROWID""",
        """CREATE TABLE outbox_seq (
            pk INTEGER NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (pk)) WITHOUT ROWID""",
        """CREATE TABLE dedup (
            pk INTEGER NOT NULL, source INTEGER NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (pk, source)) WITHOUT ROWID""",
    ),
    # 5: the status index holds live invocations only. Completed ones are most rows and are
    # never looked up by status (the engine loads the live ones); indexing them cost every
    # completion a write to a random page of the index.
    (
        "DROP INDEX invocations_status",
        "CREATE INDEX invocations_live ON invocations (status) WHERE status != 'completed'",
    ),
    # 6: a completed invocation's retention end is its ``expires_at``, found by this index, not
    # a timer row: completing costs one write near the index's end (the ends mostly grow), not
    # two to random pages of the timers table and its index by invocation
    ("CREATE INDEX invocations_expiry ON invocations (expires_at) WHERE status = 'completed'",),
)

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(Exception):
    """The data directory was written by a newer perdure (or is not a perdure store)."""


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema up to date; returns the version found before migrating."""
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    found = int(row[0]) if row else 0
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"the store has schema version {found}, this perdure knows up to "
            f"{SCHEMA_VERSION}: it was written by a newer perdure; upgrade perdure "
            "(pip install -U perdure) or use another --data-dir"
        )
    for version in range(found, SCHEMA_VERSION):
        db.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[version]:
                db.execute(statement)
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(version + 1),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return found
