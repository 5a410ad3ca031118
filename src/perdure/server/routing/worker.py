"""One worker of ``perdure server --workers N``: what the supervisor hands it, and the routing
wired into its Runtime.

The supervisor passes a ``WorkerSpec`` (JSON in ``$PERDURE_WORKER_SPEC``) and the listening
sockets as inherited file descriptors: this worker's sockets on the shared ingress and admin
ports (``SO_REUSEPORT``), and its own ingress and admin sockets, where its peers reach it. The
supervisor keeps all of them open, so a worker that restarts gets the same sockets back and
connections made meanwhile wait in their queues instead of being refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perdure.server.routing.admin import AdminRouting
from perdure.server.routing.forwarding import Forwarder
from perdure.server.routing.layout import worker_dir
from perdure.server.routing.registry_sync import RegistrySync
from perdure.server.routing.router import Peer, StaticRouter, worker_partitions
from perdure.server.routing.transport import HttpTransport, receive
from perdure.server.runtime import Runtime

SPEC_ENV = "PERDURE_WORKER_SPEC"
log = logging.getLogger("perdure.server.routing")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    peers: tuple[Peer, ...]
    """Every worker, this one included, by index."""
    fds: dict[str, int]
    """Inherited listening sockets: ``ingress``, ``admin`` (this worker's on the shared ports),
    ``own_ingress``, ``own_admin`` (its own loopback addresses)."""
    secret: str
    """Shared by the workers of this run: ``/internal`` needs it."""
    supervisor_pid: int
    partition_count: int = 16

    @property
    def name(self) -> str:
        return self.peers[self.index].name

    def to_json(self) -> str:
        return json.dumps(
            {
                "index": self.index,
                "peers": [[p.name, p.ingress_url, p.admin_url] for p in self.peers],
                "fds": self.fds,
                "secret": self.secret,
                "supervisor_pid": self.supervisor_pid,
                "partition_count": self.partition_count,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data: dict[str, Any] = json.loads(text)
        return cls(
            index=int(data["index"]),
            peers=tuple(Peer(*p) for p in data["peers"]),
            fds={str(k): int(v) for k, v in data["fds"].items()},
            secret=str(data["secret"]),
            supervisor_pid=int(data["supervisor_pid"]),
            partition_count=int(data["partition_count"]),
        )

    @classmethod
    def from_env(cls) -> WorkerSpec | None:
        text = os.environ.get(SPEC_ENV)
        return None if text is None else cls.from_json(text)

    def socket(self, name: str) -> socket.socket:
        return socket.socket(fileno=self.fds[name])

    @property
    def owned(self) -> frozenset[int]:
        return worker_partitions(self.index, len(self.peers), self.partition_count)

    def data_dir(self, data_dir: Path) -> Path:
        return worker_dir(data_dir, self.index)

    def store_paths(self, data_dir: Path, db_file: str) -> list[str]:
        """Every worker's store file, this worker's first."""
        order = [self.index, *(i for i in range(len(self.peers)) if i != self.index)]
        return [str(worker_dir(data_dir, i) / db_file) for i in order]


def label_logs(spec: WorkerSpec) -> None:
    """Name the worker in every log line (the workers share the supervisor's output)."""
    for handler in logging.getLogger().handlers:
        fmt = handler.formatter._fmt if handler.formatter is not None else None
        if fmt and "%(name)s" in fmt:
            labelled = fmt.replace("%(name)s", f"{spec.name} %(name)s")
            handler.setFormatter(logging.Formatter(labelled))


def die_with_supervisor(spec: WorkerSpec) -> None:
    """Be killed when the supervisor dies (even by SIGKILL): a worker left behind would hold
    its store and sockets and keep a restarted server from starting."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != spec.supervisor_pid:
        os._exit(1)  # the supervisor died before the line above took effect
    label_logs(spec)


@dataclass(slots=True)
class WorkerRouting:
    """The routing of one worker, wired into its Runtime's ingress and admin API."""

    forwarder: Forwarder
    registry: RegistrySync

    @classmethod
    def wire(
        cls, runtime: Runtime, spec: WorkerSpec, stores: list[str], admin_token: str | None
    ) -> WorkerRouting:
        engine = runtime.engine
        router = StaticRouter(spec.index, spec.peers, engine.partitions.count)
        forwarder = Forwarder(router, name=spec.name, secret=spec.secret, admin_token=admin_token)
        registry = RegistrySync(engine, forwarder, router.leader)
        engine.transport = HttpTransport(forwarder)
        runtime.ingress.route = lambda pk, request: forwarder.route(pk, request, ingress=True)
        runtime.admin.routing = AdminRouting(
            engine,
            runtime.invoker,
            forwarder,
            registry,
            stores=stores,
            receive_messages=lambda p, request: receive(engine, p, request),
        )
        return cls(forwarder, registry)

    async def start(self) -> None:
        await self.registry.on_start()

    async def stop(self) -> None:
        await self.registry.stop()
        await self.forwarder.aclose()
