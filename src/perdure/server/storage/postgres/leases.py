"""The lease operations on PostgreSQL, for one node: its heartbeat, renewing the leases it holds,
claiming free or expired ones (epoch + 1), giving them back, and the view of the whole cluster.

Each method is one short transaction on the node's own connection (not the store's), called from
the lease keeper's thread. Claims and releases are conditional updates, so two nodes racing for a
partition cannot both win; a claim waits at most ``LOCK_TIMEOUT`` for a commit holding the lease
row (``FOR SHARE``, see ``fencing``) and otherwise tries again on the next tick.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import psycopg

from perdure.server.storage.postgres.cluster_schema import STATEMENTS

LOCK_TIMEOUT = "1s"
FORGET_DEAD_AFTER = "10 minutes"
"""A node whose heartbeat is older than this leaves the ``nodes`` table (it shows as dead until
then)."""
_SCHEMA_LOCK = 0x70657264  # advisory lock: two nodes starting at once create the tables once


class ClusterError(Exception):
    """The cluster's tables disagree with this node's configuration; the message says how."""


@dataclass(frozen=True, slots=True)
class NodeAddress:
    """Where the other nodes reach this one."""

    name: str
    ingress_url: str
    admin_url: str


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    ingress_url: str
    admin_url: str
    heartbeat_age: float
    """Seconds since its last heartbeat (PostgreSQL's clock)."""
    live: bool
    """Its heartbeat is younger than the lease TTL and it is not leaving."""
    started_at: str


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    partition: int
    owner: str | None
    epoch: int
    expires_in: float
    """Seconds until the lease runs out (negative: expired that long ago; for a free lease, how
    long it has been free)."""
    renewed_age: float | None
    """Seconds since the owner last renewed it (None: never held)."""
    acquired_age: float | None

    @property
    def held(self) -> bool:
        return self.owner is not None and self.expires_in > 0


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The ``nodes`` and ``leases`` tables as one transaction saw them."""

    nodes: tuple[NodeInfo, ...]
    leases: tuple[LeaseInfo, ...]

    def node(self, name: str) -> NodeInfo | None:
        return next((n for n in self.nodes if n.name == name), None)


class LeaseTable:
    """One node's handle on the ``nodes`` and ``leases`` tables."""

    def __init__(self, dsn: str, me: NodeAddress, ttl: float) -> None:
        self.me = me
        self.ttl = ttl
        # No statement of the keeper may wait long (a lock held by a frozen node's transaction
        # must not stall the renewals of the others), nor may a transaction of a frozen keeper
        # hold its locks for long.
        self.db = psycopg.connect(
            dsn,
            autocommit=False,
            application_name=f"perdure {me.name}",
            options=(
                f"-c lock_timeout={LOCK_TIMEOUT} -c statement_timeout=5s "
                "-c idle_in_transaction_session_timeout=3s"
            ),
        )

    def close(self) -> None:
        self.db.close()

    def setup(self, partitions: int) -> str:
        """Create the tables when missing and one lease row per partition; refuse a cluster
        whose partition count differs. Returns the cluster's peer secret."""
        with self.db.transaction():
            self.db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in STATEMENTS:
                self.db.execute(statement)
            row = self.db.execute("SELECT count(*), max(partition) FROM leases").fetchone()
            assert row is not None
            count, top = row
            if count and top != partitions - 1:
                raise ClusterError(
                    f"the cluster's store has {top + 1} partitions, this node was configured "
                    f"with {partitions}: start it with --partitions {top + 1} (the count is "
                    "fixed when a store is created)"
                )
            self.db.execute(
                "INSERT INTO leases (partition) SELECT generate_series(0, %s - 1) "
                "ON CONFLICT DO NOTHING",
                (partitions,),
            )
            self.db.execute(
                "INSERT INTO cluster_settings (key, value) VALUES ('peer_secret', %s) "
                "ON CONFLICT DO NOTHING",
                (secrets.token_urlsafe(32),),
            )
            row = self.db.execute(
                "SELECT value FROM cluster_settings WHERE key = 'peer_secret'"
            ).fetchone()
            assert row is not None
            return str(row[0])

    def tick(self, held: Mapping[int, int]) -> tuple[set[int], ClusterView]:
        """Heartbeat, renew the leases in ``held`` (partition -> epoch), read the view: one
        transaction. Returns the partitions whose lease was renewed (a missing one was taken
        over: its epoch moved on) and the view."""
        me = self.me
        parts, epochs = list(held), [held[p] for p in held]
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO nodes (name, ingress_url, admin_url) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO UPDATE SET ingress_url = EXCLUDED.ingress_url, "
                "admin_url = EXCLUDED.admin_url, heartbeat_at = now(), leaving = false",
                (me.name, me.ingress_url, me.admin_url),
            )
            renewed: set[int] = set()
            if parts:
                self.db.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                rows = self.db.execute(
                    "UPDATE leases AS l SET expires_at = now() + make_interval(secs => %s), "
                    "renewed_at = now() FROM unnest(%s::int[], %s::bigint[]) AS h(p, e) "
                    "WHERE l.partition = h.p AND l.epoch = h.e AND l.owner = %s "
                    "RETURNING l.partition",
                    (self.ttl, parts, epochs, me.name),
                ).fetchall()
                renewed = {int(r[0]) for r in rows}
            self.db.execute(
                f"DELETE FROM nodes WHERE heartbeat_at < now() - interval '{FORGET_DEAD_AFTER}'"
            )
            view = self._view()
        return renewed, view

    def view(self) -> ClusterView:
        with self.db.transaction():
            return self._view()

    def _view(self) -> ClusterView:
        nodes = self.db.execute(
            "SELECT name, ingress_url, admin_url, "
            "extract(epoch FROM now() - heartbeat_at)::float8, leaving, started_at::text "
            "FROM nodes ORDER BY name"
        ).fetchall()
        leases = self.db.execute(
            "SELECT partition, owner, epoch, extract(epoch FROM expires_at - now())::float8, "
            "extract(epoch FROM now() - renewed_at)::float8, "
            "extract(epoch FROM now() - acquired_at)::float8 FROM leases ORDER BY partition"
        ).fetchall()
        return ClusterView(
            tuple(
                NodeInfo(name, ingress, admin, float(age), age < self.ttl and not leaving, started)
                for name, ingress, admin, age, leaving, started in nodes
            ),
            tuple(
                LeaseInfo(int(p), owner, int(epoch), float(expires), renewed, acquired)
                for p, owner, epoch, expires, renewed, acquired in leases
            ),
        )

    def claim(self, partitions: Iterable[int]) -> dict[int, int]:
        """Take each partition that is free, expired, or held under this node's name by an
        earlier process: epoch + 1. Returns partition -> new epoch for those won."""
        won: dict[int, int] = {}
        with self.db.transaction():
            self.db.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            for p in partitions:
                row = self.db.execute(
                    "UPDATE leases SET owner = %s, epoch = epoch + 1, "
                    "expires_at = now() + make_interval(secs => %s), acquired_at = now(), "
                    "renewed_at = now() "
                    "WHERE partition = %s AND (owner IS NULL OR owner = %s OR expires_at < now()) "
                    "RETURNING epoch",
                    (self.me.name, self.ttl, p, self.me.name),
                ).fetchone()
                if row is not None:
                    won[p] = int(row[0])
        return won

    def end_stuck_writers(self, older_than: float) -> list[int]:
        """End every writing transaction of a store (not a lease keeper's: those bound their
        own) open for more than ``older_than`` seconds; returns their backends' pids. A store
        commit lasts milliseconds, and read-only work (loads, ``/query``) has no xid."""
        with self.db.transaction():
            rows = self.db.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL "
                "AND application_name NOT LIKE 'perdure %%' "
                "AND xact_start < now() - make_interval(secs => %s)",
                (older_than,),
            ).fetchall()
            pids = [int(r[0]) for r in rows]
            for pid in pids:
                self.db.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return pids

    def release(self, held: Mapping[int, int]) -> None:
        """Give leases back (free at once: the next claimer needs no TTL wait)."""
        if not held:
            return
        with self.db.transaction():
            self.db.execute(
                "UPDATE leases AS l SET owner = NULL, expires_at = now() "
                "FROM unnest(%s::int[], %s::bigint[]) AS h(p, e) "
                "WHERE l.partition = h.p AND l.epoch = h.e AND l.owner = %s",
                (list(held), [held[p] for p in held], self.me.name),
            )

    def leave(self, held: Mapping[int, int]) -> None:
        """The graceful end: every lease given back, the node out of the table."""
        self.release(held)
        with self.db.transaction():
            self.db.execute("DELETE FROM nodes WHERE name = %s", (self.me.name,))
