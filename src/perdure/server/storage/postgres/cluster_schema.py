"""The cluster's tables in PostgreSQL: ``nodes`` (who is in the cluster, where to reach it, its
heartbeat) and ``leases`` (one row per partition: its owner, the epoch that fences its writes,
when the lease runs out). Every time is PostgreSQL's clock, so nodes need no synchronised clocks.

An epoch only grows: it is incremented by every claim, so each (partition, epoch) names one
tenure of one node process, and a store commit that carries an older epoch is refused.
"""

from __future__ import annotations

STATEMENTS: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS nodes (
        name TEXT PRIMARY KEY,
        ingress_url TEXT NOT NULL,
        admin_url TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        leaving BOOLEAN NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS leases (
        partition INTEGER PRIMARY KEY,
        owner TEXT,
        epoch BIGINT NOT NULL DEFAULT 0,
        expires_at TIMESTAMPTZ NOT NULL DEFAULT 'epoch',
        acquired_at TIMESTAMPTZ,
        renewed_at TIMESTAMPTZ)""",
    # Cluster-wide settings: the secret nodes sign their /internal calls with (whoever can
    # reach this database is a peer).
    """CREATE TABLE IF NOT EXISTS cluster_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL)""",
    # The fence, run first in every store commit (see fencing.py): share-locks the leases of the
    # partitions written, then raises the store's FENCED_SQLSTATE (PD001) unless all are this
    # node's at its epochs (an epoch of -1: a partition this node does not hold).
    """CREATE OR REPLACE FUNCTION perdure_fence(node TEXT, parts INTEGER[], epochs BIGINT[])
    RETURNS void LANGUAGE plpgsql AS $$
    DECLARE bad TEXT;
    BEGIN
        PERFORM 1 FROM leases WHERE partition = ANY(parts) ORDER BY partition FOR SHARE;
        SELECT string_agg(format('%s:%s@%s', h.p, coalesce(l.owner, '-'), l.epoch), ',')
            INTO bad
            FROM unnest(parts, epochs) AS h(p, e) LEFT JOIN leases l ON l.partition = h.p
            WHERE l.partition IS NULL OR l.owner IS DISTINCT FROM node OR l.epoch <> h.e;
        IF bad IS NOT NULL THEN
            RAISE EXCEPTION 'perdure: fenced (%)', bad USING ERRCODE = 'PD001', DETAIL = bad;
        END IF;
    END $$""",
)

"""Idempotent (``IF NOT EXISTS``, ``OR REPLACE``): every node runs them at start, under an
advisory lock, after the store's own migrations (storage/postgres/schema.py); a later change
appends statements that are idempotent too."""
