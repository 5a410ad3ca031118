"""The registry (deployments and services) kept the same on every worker of one machine.

Worker 0 orders registry changes: the others forward ``POST /deployments``, ``DELETE
/deployments/{id}`` and ``PATCH /services/{name}`` to it. After a change it pushes a snapshot of
its whole registry to every peer, which stores it in its own file (a replace, so removals carry
over too). Snapshots carry a version that only grows while worker 0 runs, and a peer ignores one
older than what it has seen, so pushes and pulls may cross.

Surviving restarts: a change is answered once worker 0 has committed it and every reachable peer
has stored it; a peer that was down pulls worker 0's snapshot when it starts (before it serves),
and worker 0 pushes its snapshot to everyone when it starts (in case it died between its commit
and its pushes).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from perdure.server.engine import registrations
from perdure.server.records import DeploymentRecord, ServiceRecord
from perdure.server.routing.forwarding import PeerError
from perdure.server.routing.router import Peer

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine
    from perdure.server.routing.forwarding import Forwarder

log = logging.getLogger("perdure.server.routing")
REGISTRY_PATH = "/internal/registry"
PUSH_WAIT = 10.0
"""How long a registry change waits for each peer to store it before answering anyway (a peer
that missed it pulls it when it starts)."""


class RegistrySync:
    def __init__(self, engine: Engine, forwarder: Forwarder, leader: Peer | None) -> None:
        self.engine = engine
        self.forwarder = forwarder
        self.leader = leader
        """Worker 0, which orders changes; None when this is worker 0."""
        self._version = 0
        self._seen = 0
        self._pushing: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()

    # -- the snapshot ----------------------------------------------------------------------------

    def snapshot(self) -> bytes:
        self._version = max(self._version + 1, time.time_ns())
        registry = self.engine.registry
        return json.dumps(
            {
                "version": self._version,
                "deployments": [
                    dataclasses.asdict(d.record) for d in registry.deployments.values()
                ],
                "services": [dataclasses.asdict(s.record) for s in registry.services.values()],
            }
        ).encode()

    async def apply(self, body: bytes) -> bool:
        """Store a snapshot from worker 0 unless a newer one was seen; True when applied."""
        data: dict[str, Any] = json.loads(body)
        version = int(data["version"])
        if version <= self._seen:
            return False
        self._seen = version
        deployments = [DeploymentRecord(**d) for d in data["deployments"]]
        services = [ServiceRecord(**s) for s in data["services"]]
        self.engine.run(lambda core: registrations.replace_all(core, deployments, services))
        await self.engine.durable()
        return True

    # -- worker 0: push ----------------------------------------------------------------------------

    async def changed(self) -> None:
        """After a committed change: push to every peer; wait (bounded) until each stored it."""
        tasks = [self._push_soon(peer) for peer in self.forwarder.router.peers()]
        if tasks:
            await asyncio.wait(tasks, timeout=PUSH_WAIT)

    def _push_soon(self, peer: Peer) -> asyncio.Task[None]:
        self._dirty.add(peer.name)
        task = self._pushing.get(peer.name)
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._push_loop(peer))
            self._pushing[peer.name] = task
        return task

    async def _push_loop(self, peer: Peer) -> None:
        """Push the latest snapshot to ``peer`` until it has stored one taken after the last
        change (one push in flight per peer, so they arrive in order)."""
        delay = 0.2
        while peer.name in self._dirty:
            self._dirty.discard(peer.name)
            try:
                answer = await self.forwarder.internal(peer, "PUT", REGISTRY_PATH, self.snapshot())
                if answer.status >= 300:
                    raise RuntimeError(f"{answer.status} {answer.text[:200]}")
                delay = 0.2
            except (*PeerError, RuntimeError) as exc:
                log.warning("registry push to %s failed (%s); retrying", peer.name, exc)
                self._dirty.add(peer.name)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- start -------------------------------------------------------------------------------------

    async def on_start(self, pull_timeout: float = 5.0) -> None:
        """Worker 0 pushes its registry to all; another worker pulls worker 0's first (waiting up
        to ``pull_timeout``, then going on in the background)."""
        if self.leader is None:
            for peer in self.forwarder.router.peers():
                self._push_soon(peer)
            return
        pull = asyncio.get_running_loop().create_task(self._pull_loop(self.leader))
        self._pushing["pull"] = pull
        await asyncio.wait([pull], timeout=pull_timeout)

    async def _pull_loop(self, leader: Peer) -> None:
        delay = 0.2
        while True:
            try:
                answer = await self.forwarder.internal(leader, "GET", REGISTRY_PATH)
                if answer.status == 200:
                    await self.apply(answer.body)
                    return
                raise RuntimeError(f"{answer.status} {answer.text[:200]}")
            except (*PeerError, RuntimeError) as exc:
                log.info("registry pull from %s failed (%s); retrying", leader.name, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def stop(self) -> None:
        for task in self._pushing.values():
            task.cancel()
        await asyncio.gather(*self._pushing.values(), return_exceptions=True)
