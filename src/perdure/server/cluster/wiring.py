"""A cluster node wired into a server: the PostgreSQL store under the lease fence, the engine
owning nothing until the leases come, the lease router behind routing's forwarding, registry
changes ordered by one node, ``GET /cluster``.

``perdure server --store postgresql://... --node-name NAME --advertise HOST`` runs this; without
``--node-name`` a server on PostgreSQL is a single writer (the store's own fence).
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from typing import Any

from perdure.server.cluster.fencing import LeaseFence
from perdure.server.cluster.keeper import Timing
from perdure.server.cluster.node import ClusterNode
from perdure.server.cluster.router import ClusterForwarder, LeaseRouter
from perdure.server.routing.admin import AdminRouting
from perdure.server.routing.registry_sync import RegistrySync
from perdure.server.routing.router import Peer
from perdure.server.routing.transport import HttpTransport, receive
from perdure.server.storage.postgres.leases import ClusterError, NodeAddress

log = logging.getLogger("perdure.server.cluster")
NODE_NAME_ENV = "PERDURE_NODE_NAME"
ADVERTISE_ENV = "PERDURE_ADVERTISE"


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """``--node-name`` and ``--advertise``: this node in the cluster."""

    node_name: str
    advertise: str | None = None
    """The host the other nodes reach this one at (None: the bind host, or this machine's
    name when bound to every interface)."""
    timing: Timing = field(default_factory=Timing)

    def address(self, ingress_bind: str, admin_bind: str) -> NodeAddress:
        return NodeAddress(
            self.node_name,
            f"http://{self._host(ingress_bind)}:{ingress_bind.rpartition(':')[2]}",
            f"http://{self._host(admin_bind)}:{admin_bind.rpartition(':')[2]}",
        )

    def _host(self, bind: str) -> str:
        if self.advertise:
            return self.advertise
        host = bind.rpartition(":")[0]
        if host in ("", "0.0.0.0", "[::]", "::"):
            return socket.gethostname()
        return host


def settings_from(node_name: str | None, advertise: str | None) -> ClusterSettings | None:
    """The flags (or their environment variables): None when this is no cluster node."""
    name = node_name or os.environ.get(NODE_NAME_ENV) or None
    host = advertise or os.environ.get(ADVERTISE_ENV) or None
    if name is None:
        if host is not None:
            raise ValueError("--advertise needs --node-name (a cluster node's name)")
        return None
    if not name.isascii() or not name.isprintable() or " " in name or len(name) > 100:
        raise ValueError("--node-name: printable ASCII without spaces, at most 100 characters")
    return ClusterSettings(name, host)


class ClusterRegistrySync(RegistrySync):
    """Registry changes ordered by the live node first by name (the leader moves when it dies),
    pushed from it to every other node; PostgreSQL holds the result."""

    def __init__(self, router: LeaseRouter, *args: Any) -> None:
        self._router = router
        super().__init__(*args)

    @property
    def leader(self) -> Peer | None:
        return self._router.leader

    @leader.setter
    def leader(self, value: Peer | None) -> None:
        pass  # chosen from the leases' view, not fixed


@dataclass(slots=True)
class ClusterRouting:
    node: ClusterNode
    forwarder: ClusterForwarder
    registry: ClusterRegistrySync

    @classmethod
    def wire(cls, runtime: Any, node: ClusterNode, admin_token: str | None) -> ClusterRouting:
        """Route ``runtime``'s ingress and admin API by the leases (after ``node.setup``)."""
        router = LeaseRouter(node)
        forwarder = ClusterForwarder(
            router, name=node.name, secret=node.secret, admin_token=admin_token
        )
        engine = runtime.engine
        registry = ClusterRegistrySync(router, engine, forwarder, None)
        engine.transport = HttpTransport(forwarder)
        runtime.ingress.route = lambda pk, request: forwarder.route(pk, request, ingress=True)
        runtime.admin.routing = AdminRouting(
            engine,
            runtime.invoker,
            forwarder,
            registry,
            stores=(),
            receive_messages=lambda p, request: receive(engine, p, request),
        )
        runtime.admin.cluster = node
        return cls(node, forwarder, registry)

    async def start(self) -> None:
        """Join the cluster: claim this node's share and acquire it, then sync the registry."""
        await self.node.start()
        await self.registry.on_start()

    async def stop(self) -> None:
        """After the engine stopped: give every lease back, close the links."""
        await self.node.leave()
        await self.registry.stop()
        await self.forwarder.aclose()


async def join(runtime: Any, config: Any, fence: LeaseFence) -> ClusterRouting:
    """Make ``runtime`` (on the PostgreSQL store ``config.store``, under ``fence``) a node of
    the cluster: create the cluster's tables if missing, route by the leases, claim this node's
    share and acquire it."""
    settings: ClusterSettings = config.cluster
    engine = runtime.engine
    node = ClusterNode(
        config.store,
        settings.address(config.ingress_bind, config.admin_bind),
        partitions=engine.partitions.count,
        engine=engine,
        store=engine.core.store,
        fence=fence,
        timing=settings.timing,
    )
    try:
        await node.setup()
    except ClusterError as exc:  # the cluster's tables disagree with this node: say how, stop
        log.error("%s", exc)
        raise SystemExit(1) from None
    gate = node.guard(runtime.invoker)
    runtime.invoker.pool.gate = gate
    engine.invoker = gate
    routing = ClusterRouting.wire(runtime, node, config.protection.admin_token)
    await routing.start()
    log.info(
        "node %s joined the cluster: partitions %s here, ingress %s, admin %s",
        node.name,
        sorted(engine.owned),
        node.address.ingress_url,
        node.address.admin_url,
    )
    return routing
