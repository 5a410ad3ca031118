"""The chaos suite on a cluster (``python -m tests.chaos --nodes 3``): N ``perdure server``
nodes on a throwaway PostgreSQL (tests/cluster/nodes.py), the chaos deployment behind the
black-hole proxy, registered once for the whole cluster. The workload is spread over every live
node's ingress (tests/cluster/spread.py).

The server faults become node faults: ``server`` SIGKILLs a random node, waits until the others
took its partitions over (the cycle's "restart" time is that takeover), then starts it again
(it rejoins and the partitions spread back); ``pause`` SIGSTOPs a random node past its lease,
resumes it (it must stop: exit 75, having written nothing) and starts it again.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.chaos.cluster import Cluster, deployment_behind_proxy
from tests.cluster.nodes import TTL, Node
from tests.cluster.nodes import Cluster as Nodes
from tests.cluster.nodes import cluster as start_nodes
from tests.support import postgres

PAUSE_PAST_LEASE = 2.0
"""How long past the lease TTL a paused node stays frozen."""


@dataclass
class NodesCluster(Cluster):
    """The chaos ``Cluster`` interface over the nodes of a real cluster."""

    nodes: Nodes | None = None
    rng: random.Random | None = None

    @property
    def live(self) -> list[Node]:
        assert self.nodes is not None
        return [n for n in self.nodes.nodes if n.alive()]

    @property
    def ingress(self) -> str:
        return self.live[0].ingress

    @property
    def admin(self) -> str:
        return self.live[0].admin

    def _victim(self) -> Node:
        assert self.rng is not None
        return self.rng.choice(self.live)

    async def _rejoin(self, node: Node) -> None:
        assert self.nodes is not None
        await asyncio.to_thread(node.start)
        names = [n.name for n in self.nodes.nodes]
        await asyncio.to_thread(self.nodes.wait_settled, names, 60.0)

    async def kill_server(self) -> float:
        """SIGKILL a node; returns the time until the others took its partitions over; then it
        starts again and rejoins."""
        assert self.nodes is not None
        node = self._victim()
        survivors = [n.name for n in self.live if n is not node]
        began = time.monotonic()
        await asyncio.to_thread(node.kill)
        await asyncio.to_thread(self.nodes.wait_settled, survivors, 60.0, even=False)
        takeover = time.monotonic() - began
        await self._rejoin(node)
        return takeover

    async def kill_both(self) -> float:
        node, deployment = await asyncio.gather(self.kill_server(), self.kill_deployment())
        return max(node, deployment)

    async def pause_node(self) -> float:
        """SIGSTOP a node past its lease, then SIGCONT: it must find its leases taken over and
        stop; returns the time until the others took over; then it starts again."""
        assert self.nodes is not None
        node = self._victim()
        survivors = [n.name for n in self.live if n is not node]
        began = time.monotonic()
        node.signal(signal.SIGSTOP)
        await asyncio.to_thread(self.nodes.wait_settled, survivors, 60.0, even=False)
        takeover = time.monotonic() - began
        await asyncio.sleep(max(0.0, TTL + PAUSE_PAST_LEASE - takeover))
        node.signal(signal.SIGCONT)
        deadline = time.monotonic() + 15
        while node.alive() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        code = node.exit_code()
        self.log.append(f"paused node {node.name} exited with {code}")
        if code is None:
            raise AssertionError(f"node {node.name} went on after its leases were taken over")
        await self._rejoin(node)
        return takeover


@asynccontextmanager
async def nodes_cluster(
    tmp: Path, count: int, seed: int, server_args: tuple[str, ...] = ()
) -> AsyncIterator[NodesCluster]:
    async with deployment_behind_proxy(tmp) as (deployment, proxy):
        dsn = postgres.shared_server().create_database("chaos")
        names = [chr(ord("a") + i) for i in range(count)]
        with start_nodes(dsn, tmp, names, server_args) as nodes:
            c = NodesCluster(None, deployment, proxy, nodes=nodes, rng=random.Random(seed))  # type: ignore[arg-type]
            await asyncio.to_thread(nodes.register, f"http://127.0.0.1:{proxy.port}")
            try:
                yield c
            finally:
                deployment.thaw()  # hang() may have left it frozen: thaw it while the nodes run
