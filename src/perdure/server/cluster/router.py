"""The lease-based router: which node owns a partition, from the keeper's latest view of the
``leases`` and ``nodes`` tables (at most one tick old; a move this node made shows at once).

None means this process: the engine owns it now. A partition on its way in (claimed, still
loading) or without a live owner (expired, not yet taken over) has no owner: ``NoOwner``, which
the ingress answers with 503 and a Retry-After (the takeover takes a few seconds at most).
"""

from __future__ import annotations

from dataclasses import dataclass

from perdure.server.cluster.node import ClusterNode


class NoOwner(Exception):
    """Nobody serves the partition right now (a takeover or a move is under way)."""


@dataclass(frozen=True, slots=True)
class NodePeer:
    name: str
    ingress_url: str
    admin_url: str


class LeaseRouter:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    def owner(self, partition: int) -> NodePeer | None:
        if partition in self.node.engine.owned:
            return None
        view = self.node.view
        lease = view.leases[partition] if view is not None else None
        if view is None or lease is None or lease.owner is None or not lease.held:
            raise NoOwner(f"partition {partition} has no owner now; retry in a moment")
        if lease.owner == self.node.name:
            raise NoOwner(f"partition {partition} is loading on this node; retry in a moment")
        info = view.node(lease.owner)
        if info is None:
            raise NoOwner(f"partition {partition}'s owner {lease.owner} is not registered")
        return NodePeer(info.name, info.ingress_url, info.admin_url)
