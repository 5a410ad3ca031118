"""Who owns a partition: the ``Router`` every process asks before it acts on a partition it may
not own, and ``Peer``, the addresses of another process (a worker on this machine, or a node of
the cluster).

``Router.owner(p)`` answers ``None`` for a partition this process owns, else the peer to send
the work to. ``StaticRouter`` is the fixed split of ``perdure server --workers N``: worker ``i``
owns the partitions ``p`` with ``p % N == i``. The cluster provides a lease-based Router with the
same interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Peer:
    """Another process serving partitions, and where to reach it."""

    name: str
    """A name for logs and errors (``worker-1``, a node's name)."""
    ingress_url: str
    """Its own ingress (``http://host:port``), where forwarded ingress requests go."""
    admin_url: str
    """Its own admin listener, which also serves ``/internal/...`` between peers."""


class Router(Protocol):
    """Ownership as one process sees it."""

    @property
    def partition_count(self) -> int:
        """``P``: how many partitions the key space is cut into."""
        ...

    def owner(self, partition: int) -> Peer | None:
        """The peer owning ``partition``; None when this process owns it (or no one is known to:
        the caller then acts locally, as a single process would)."""
        ...

    def peers(self) -> Sequence[Peer]:
        """Every other process (to fan out listings and registry changes)."""
        ...


def worker_partitions(index: int, workers: int, partition_count: int) -> frozenset[int]:
    """The partitions worker ``index`` of ``workers`` owns: ``p % workers == index``."""
    return frozenset(p for p in range(partition_count) if p % workers == index)


class StaticRouter:
    """The fixed split between the workers of one ``perdure server --workers N``."""

    def __init__(self, index: int, workers: Sequence[Peer], partition_count: int) -> None:
        if not 0 <= index < len(workers):
            raise ValueError(f"worker index {index} out of range 0..{len(workers) - 1}")
        self.index = index
        self.workers = tuple(workers)
        self._count = partition_count

    @property
    def partition_count(self) -> int:
        return self._count

    @property
    def owned(self) -> frozenset[int]:
        return worker_partitions(self.index, len(self.workers), self._count)

    def owner(self, partition: int) -> Peer | None:
        i = partition % len(self.workers)
        return None if i == self.index else self.workers[i]

    def peers(self) -> Sequence[Peer]:
        return [w for i, w in enumerate(self.workers) if i != self.index]

    @property
    def leader(self) -> Peer | None:
        """The worker that orders registry changes (worker 0); None when it is this one."""
        return None if self.index == 0 else self.workers[0]
