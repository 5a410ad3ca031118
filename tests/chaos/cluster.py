"""The processes under test and the faults done to them: a real ``perdure server`` on a data dir
(tests/support/perdure_server.py), a real deployment process (tests/chaos/services.py) on a fixed
loopback port, and the black-hole proxy between them (the server is registered with the proxy's
URI). Every blocking step runs in a thread: the proxy lives on the runner's event loop and must
keep forwarding while a process restarts."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from perdure.protocol import InvocationId
from tests.chaos.proxy import BlackholeProxy
from tests.support.perdure_server import REPO, PerdureServer
from tests.support.processes import Restartable, free_port, wait_tcp


@dataclass
class Deployment(Restartable):
    """The chaos deployment process (tests/chaos/services.py) on a fixed port; the process
    faults are ``Restartable``'s."""

    port: int
    ledger: Path
    tmp: Path
    goaway_after: int = 0

    def start(self) -> None:
        args = [
            sys.executable,
            "-m",
            "tests.chaos.services",
            "--port",
            str(self.port),
            "--ledger",
            str(self.ledger),
        ]
        if self.goaway_after:
            args += ["--goaway-after", str(self.goaway_after)]
        self.spawn("chaos deployment", args, self.tmp / "deployment", cwd=REPO)
        wait_tcp(self.port, "chaos deployment", self.child)


async def every_partition_answers(ingress: str, partitions: int = 16) -> None:
    """Wait until the owner of every partition answers (the output of an unknown invocation
    of each partition: 404 from its owner, a 5xx while the owner is away)."""
    async with httpx.AsyncClient(base_url=ingress, timeout=10.0) as http:
        for p in range(partitions):
            probe = InvocationId((p << 64) // partitions, 1)
            while True:
                try:
                    resp = await http.get(f"/restate/invocation/{probe}/output")
                    if resp.status_code == 404:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.05)


@dataclass
class Cluster:
    server: PerdureServer
    deployment: Deployment
    proxy: BlackholeProxy
    silenced: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def ingress(self) -> str:
        return self.server.ingress

    @property
    def admin(self) -> str:
        return self.server.admin

    async def kill_server(self) -> float:
        """SIGKILL and restart on the same data dir; returns the restart's duration."""
        await asyncio.to_thread(self.server.kill)
        began = time.monotonic()
        await asyncio.to_thread(self.server.restart)
        return time.monotonic() - began

    async def kill_worker(self, rng_pick: int) -> float:
        """SIGKILL one worker of ``--workers N`` (the supervisor restarts it); returns the time
        until its replacement answers."""
        pids = self.server.worker_pids()
        assert pids, "kill_worker needs a server started with --workers N"
        victim = pids[rng_pick % len(pids)]
        os.kill(victim, signal.SIGKILL)
        began = time.monotonic()
        while True:
            now = self.server.worker_pids()
            if victim not in now and len(now) == len(pids):
                break
            await asyncio.sleep(0.05)
        await every_partition_answers(self.ingress)
        return time.monotonic() - began

    async def kill_deployment(self) -> float:
        await asyncio.to_thread(self.deployment.kill)
        began = time.monotonic()
        await asyncio.to_thread(self.deployment.start)
        return time.monotonic() - began

    async def kill_both(self) -> float:
        await asyncio.gather(
            asyncio.to_thread(self.server.kill), asyncio.to_thread(self.deployment.kill)
        )
        began = time.monotonic()
        await asyncio.gather(
            asyncio.to_thread(self.server.restart), asyncio.to_thread(self.deployment.start)
        )
        return time.monotonic() - began

    async def switch_deployment(self, goaway_after: int) -> float:
        """A graceful restart (SIGTERM) into a deployment that sends GOAWAY after
        ``goaway_after`` requests per connection (0: perdure.serve's default)."""
        began = time.monotonic()
        await asyncio.to_thread(self.deployment.stop)
        self.deployment.goaway_after = goaway_after
        await asyncio.to_thread(self.deployment.start)
        return time.monotonic() - began

    async def blackhole(self) -> int:
        """Silence the open connections, once there is one (the server keeps its HTTP/2
        connection open under load; a black hole over no connection would test nothing)."""
        deadline = time.monotonic() + 10
        while not self.proxy.live() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        silenced = self.proxy.blackhole()
        self.silenced += silenced
        return silenced

    def hang(self) -> None:
        self.deployment.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.deployment.signal(signal.SIGCONT)


@asynccontextmanager
async def deployment_behind_proxy(tmp: Path) -> AsyncIterator[tuple[Deployment, BlackholeProxy]]:
    """The chaos deployment on a free port, started, with the black-hole proxy in front of it
    (register the proxy's port); both stopped at the end."""
    tmp.mkdir(parents=True, exist_ok=True)
    deployment = Deployment(free_port(), tmp / "ledger.jsonl", tmp)
    proxy = BlackholeProxy(deployment.port)
    await proxy.start()
    await asyncio.to_thread(deployment.start)
    try:
        yield deployment, proxy
    finally:
        await asyncio.to_thread(deployment.stop)
        await proxy.close()


@asynccontextmanager
async def cluster(tmp: Path, server_args: tuple[str, ...] = ()) -> AsyncIterator[Cluster]:
    async with deployment_behind_proxy(tmp) as (deployment, proxy):
        # Workers share one machine's SQLite files (--store with --workers is refused).
        store = "sqlite" if "--workers" in server_args else None
        with PerdureServer.start(tmp, args=server_args, store=store) as server:
            c = Cluster(server, deployment, proxy)
            await asyncio.to_thread(server.register, f"http://127.0.0.1:{proxy.port}")
            try:
                yield c
            finally:
                deployment.thaw()  # hang() may have left it frozen: thaw it while the server runs
