"""The lease-based ``Router`` (routing/router.py) of a cluster node: which node owns a partition,
from the keeper's latest view of the ``leases`` and ``nodes`` tables (at most one tick old; a
move this node made shows at once).

None means this process: its engine runs the partition now. A partition on its way in (claimed,
still loading) or without a live owner (expired, not yet taken over) has no owner: ``NoOwner``,
which ``ClusterForwarder`` answers with a 503 and ``Retry-After`` (a takeover takes seconds).
"""

from __future__ import annotations

from collections.abc import Sequence

from perdure.server.api.http import Request, Response
from perdure.server.cluster.node import ClusterNode
from perdure.server.routing.forwarding import Forwarder, json_error
from perdure.server.routing.router import Peer

RETRY_AFTER = "1"


class NoOwner(Exception):
    """Nobody serves the partition right now (a takeover or a move is under way)."""


class LeaseRouter:
    def __init__(self, node: ClusterNode) -> None:
        self.node = node

    @property
    def partition_count(self) -> int:
        return self.node.partitions

    def owner(self, partition: int) -> Peer | None:
        if partition in self.node.engine.owned:
            return None
        view = self.node.view
        if view is None:
            raise NoOwner("this node has not joined the cluster yet; retry in a moment")
        lease = view.leases[partition]
        if lease.owner is None or not lease.held:
            raise NoOwner(f"partition {partition} has no owner now (taken over); retry")
        if lease.owner == self.node.name:
            raise NoOwner(f"partition {partition} is loading on this node; retry")
        info = view.node(lease.owner)
        if info is None:
            raise NoOwner(f"partition {partition}'s owner {lease.owner} left; retry")
        return Peer(info.name, info.ingress_url, info.admin_url)

    def peers(self) -> Sequence[Peer]:
        """The other live nodes."""
        view = self.node.view
        if view is None:
            return []
        return [
            Peer(n.name, n.ingress_url, n.admin_url)
            for n in view.nodes
            if n.live and n.name != self.node.name
        ]

    @property
    def leader(self) -> Peer | None:
        """The node that orders registry changes: the live node first by name (None: this one)."""
        view = self.node.view
        live = sorted(n.name for n in view.nodes if n.live) if view is not None else []
        first = live[0] if live else self.node.name
        if first == self.node.name:
            return None
        info = view.node(first) if view is not None else None
        return None if info is None else Peer(info.name, info.ingress_url, info.admin_url)


class ClusterForwarder(Forwarder):
    """Forwarding with a lease-based router: a partition without an owner right now answers 503
    with ``Retry-After`` (nothing was sent anywhere, so a retry is safe)."""

    async def route(self, pk: int, request: Request, *, ingress: bool) -> Response | None:
        try:
            return await super().route(pk, request, ingress=ingress)
        except NoOwner as exc:
            response = json_error(503, str(exc), ingress=ingress)
            return Response(503, response.body, [*response.headers, ("retry-after", RETRY_AFTER)])
