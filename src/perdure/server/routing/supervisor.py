"""``perdure server --workers N``: one supervisor process and N worker processes on one machine,
so that the server uses every core.

The supervisor binds every listening socket itself and hands them to the workers: for the
ingress and admin addresses the users know, one socket per worker, all bound to the same port
with ``SO_REUSEPORT`` (the kernel spreads new connections evenly over them); and two loopback
sockets per worker where its peers forward what it owns. It holds them for its whole life, so a
worker that dies and is started again gets the same sockets back, and connections made meanwhile
wait in its sockets' queues instead of being refused or reset.

It restarts a worker that exits unexpectedly (backing off if one keeps failing at once; a worker
that fails at start three times in a row, with a clear error such as a store in use, stops the
server). SIGTERM or SIGINT stop every worker gracefully (each lets its attempts reach a safe
point and commits) and then the supervisor. When the supervisor dies (even by SIGKILL), the
kernel kills the workers.

Why not the alternatives: the supervisor proxying every request would add a hop to each (about
0.1 ms of CPU, both ends, as measured for the workers' own forwards) and put all traffic through
one process, one core, which is what ``--workers`` is for. One listening socket shared by every
worker costs the same as ``SO_REUSEPORT`` but spreads connections badly: the worker that wakes
first accepts every pending connection (16 new connections went 14/2 and 16/0 between two
workers).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perdure.server.bind import split_bind
from perdure.server.routing.layout import claim
from perdure.server.routing.router import Peer
from perdure.server.routing.worker import SPEC_ENV, WorkerSpec

if TYPE_CHECKING:
    from perdure.server.app import ServerConfig

log = logging.getLogger("perdure.server.supervisor")
FAILED_STARTS = 3
"""A worker that exits with an error this many times in a row, each within ``QUICK_EXIT``
seconds of starting, stops the server (it would only fail again)."""
QUICK_EXIT = 5.0


def listen(bind: str, *, reuse_port: bool = False) -> socket.socket:
    """A listening TCP socket on HOST:PORT (IPv4 or IPv6)."""
    address = split_bind(bind)
    if address is None:
        raise ValueError(f"bad address {bind!r}, expected HOST:PORT")
    host, port = address
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.create_server(sockaddr, family=family, backlog=4096, reuse_port=reuse_port)
    sock.set_inheritable(True)
    return sock


def listen_shared(bind: str, count: int) -> list[socket.socket]:
    """``count`` sockets listening on the same HOST:PORT with ``SO_REUSEPORT`` (port 0: the
    port the first one got)."""
    first = listen(bind, reuse_port=True)
    host = bind.rpartition(":")[0]
    port = first.getsockname()[1]
    return [first, *(listen(f"{host}:{port}", reuse_port=True) for _ in range(count - 1))]


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@dataclass
class _Worker:
    index: int
    spec: WorkerSpec
    proc: asyncio.subprocess.Process | None = None
    failed_starts: int = 0
    started_at: float = field(default_factory=time.monotonic)


class Supervisor:
    def __init__(self, config: ServerConfig, workers: int, argv: Sequence[str]) -> None:
        if workers < 2:
            raise ValueError("a supervisor runs 2 or more workers")
        self.config = config
        self.count = workers
        self.argv = list(argv)
        self.stopping = False
        self.failed: str | None = None
        self._sockets: list[socket.socket] = []

    async def run(self, stop: asyncio.Event | None = None) -> int:
        """Run the workers until ``stop`` is set (or SIGTERM/SIGINT); 0, or 1 when a worker
        could not start."""
        partitions = claim(self.config.data_dir, self.count, self.config.partitions)
        assert partitions is not None  # recorded for N > 1
        loop = asyncio.get_running_loop()
        if stop is None:
            stop = asyncio.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        workers = self._prepare(partitions)
        log.info(
            "perdure server listening: ingress http://%s, admin http://%s, data %s, %d workers",
            self.config.ingress_bind, self.config.admin_bind,
            self.config.data_dir.resolve(), self.count,
        )  # fmt: skip
        failed = asyncio.Event()
        watchers = [loop.create_task(self._watch(w, failed)) for w in workers]
        waits: list[asyncio.Task[bool]] = [
            loop.create_task(stop.wait()),
            loop.create_task(failed.wait()),
        ]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        self.stopping = True
        log.info("stopping the workers")
        await self._stop_all(workers)
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        if self.failed is not None:
            log.error("%s", self.failed)
            return 1
        log.info("stopped")
        return 0

    def _prepare(self, partitions: int) -> list[_Worker]:
        ingress = listen_shared(self.config.ingress_bind, self.count)
        admin = listen_shared(self.config.admin_bind, self.count)
        self._sockets += [*ingress, *admin]
        own = []
        for _ in range(self.count):
            pair = (listen("127.0.0.1:0"), listen("127.0.0.1:0"))
            self._sockets += pair
            own.append(pair)
        peers = tuple(
            Peer(f"worker-{i}", _url(own[i][0]), _url(own[i][1])) for i in range(self.count)
        )
        secret = secrets.token_urlsafe(32)
        return [
            _Worker(
                i,
                WorkerSpec(
                    index=i,
                    peers=peers,
                    fds={
                        "ingress": ingress[i].fileno(),
                        "admin": admin[i].fileno(),
                        "own_ingress": own[i][0].fileno(),
                        "own_admin": own[i][1].fileno(),
                    },
                    secret=secret,
                    supervisor_pid=os.getpid(),
                    partition_count=partitions,
                ),
            )
            for i in range(self.count)
        ]

    async def _spawn(self, worker: _Worker) -> None:
        env = {**os.environ, SPEC_ENV: worker.spec.to_json()}
        worker.started_at = time.monotonic()
        worker.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "perdure.cli", *self.argv,
            env=env, pass_fds=tuple(worker.spec.fds.values()), stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    async def _watch(self, worker: _Worker, failed: asyncio.Event) -> None:
        """Keep ``worker`` running until the supervisor stops."""
        delay = 0.2
        while not self.stopping:
            await self._spawn(worker)
            assert worker.proc is not None
            code = await worker.proc.wait()
            if self.stopping:
                return
            quick = time.monotonic() - worker.started_at < QUICK_EXIT
            worker.failed_starts = worker.failed_starts + 1 if quick and code > 0 else 0
            if worker.failed_starts >= FAILED_STARTS:
                self.failed = (
                    f"worker {worker.index} failed {FAILED_STARTS} times at start (exit code "
                    f"{code}); stopping (its log above says why)"
                )
                failed.set()
                return
            delay = delay * 2 if quick else 0.2
            log.warning("worker %d exited (%s); restarting it", worker.index,
                        f"signal {-code}" if code < 0 else f"exit code {code}")  # fmt: skip
            await asyncio.sleep(min(delay, 5.0))

    async def _stop_all(self, workers: list[_Worker]) -> None:
        procs = [w.proc for w in workers if w.proc is not None and w.proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        if not procs:
            return
        grace = self.config.shutdown_timeout + 15.0
        _, late = await asyncio.wait(
            [asyncio.ensure_future(p.wait()) for p in procs], timeout=grace
        )
        if late:
            log.warning("%d worker(s) did not stop within %.0fs: killing them", len(late), grace)
            for proc in procs:
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in procs))
