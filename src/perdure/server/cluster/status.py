"""What ``GET /cluster`` (and so ``perdure cluster status``) shows: the nodes, every partition's
owner, epoch and lease age, from the node's latest view (at most one lease tick old)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the cluster's modules need psycopg: imported only on a cluster node
    from perdure.server.cluster.node import ClusterNode


def cluster_json(node: ClusterNode) -> dict[str, Any]:
    view = node.view
    nodes = view.nodes if view is not None else ()
    leases = view.leases if view is not None else ()
    owned = node.engine.owned
    return {
        "node": node.name,
        "partitions": node.partitions,
        "lease_ttl_seconds": node.timing.ttl,
        "nodes": [
            {
                "name": n.name,
                "ingress_url": n.ingress_url,
                "admin_url": n.admin_url,
                "live": n.live,
                "heartbeat_age_seconds": round(n.heartbeat_age, 3),
                "started_at": n.started_at,
                "partitions": [
                    lease.partition for lease in leases if lease.held and lease.owner == n.name
                ],
            }
            for n in nodes
        ],
        "leases": [
            {
                "partition": lease.partition,
                "owner": lease.owner if lease.held else None,
                "last_owner": lease.owner,
                "epoch": lease.epoch,
                "state": "held" if lease.held else ("expired" if lease.owner else "free"),
                "lease_age_seconds": _round(lease.renewed_age),
                "held_for_seconds": _round(lease.acquired_age),
                "expires_in_seconds": round(lease.expires_in, 3),
                "served_here": lease.partition in owned,
            }
            for lease in leases
        ],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
