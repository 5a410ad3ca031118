"""Which partitions a node should claim or give back, from one view of the cluster.

Even spread: the live nodes, in name order, share the ``P`` partitions as ``P // n`` each, the
first ``P % n`` one more (so every node's share is at most ``ceil(P / n)``). A node below its share
claims free or expired leases; a node above it gives back its surplus, but only while some live
node is below its own share (someone will take them). A lease left free longer than
``ORPHAN_GRACE`` is claimed by any node, beyond its share if need be: availability first, the
spread is restored on later ticks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from perdure.server.storage.postgres.leases import ClusterView

ORPHAN_GRACE = 2.0
"""Seconds a lease may stay free or expired before any node takes it, share or not."""


@dataclass(frozen=True, slots=True)
class Plan:
    claim: list[int] = field(default_factory=list)
    release: list[int] = field(default_factory=list)


def shares(live: Collection[str], partitions: int) -> dict[str, int]:
    """How many partitions each live node should hold."""
    names = sorted(live)
    if not names:
        return {}
    base, extra = divmod(partitions, len(names))
    return {name: base + (1 if i < extra else 0) for i, name in enumerate(names)}


def plan(view: ClusterView, me: str, held: Collection[int]) -> Plan:
    """What ``me`` (holding ``held``) should claim and give back now."""
    live = {n.name for n in view.nodes if n.live} | {me}
    share = shares(live, len(view.leases))
    counts = dict.fromkeys(live, 0)
    for lease in view.leases:
        if lease.held and lease.owner in counts and lease.partition not in held:
            counts[lease.owner] = counts[lease.owner] + 1
    counts[me] = len(held)
    claimable = [
        lease
        for lease in view.leases
        if lease.partition not in held and (not lease.held or lease.owner == me)
    ]
    # Spread the contention: each node tries the free partitions in an order of its own.
    claimable.sort(key=lambda lease: (lease.owner != me, _order(me, lease.partition)))
    want = share[me] - len(held)
    claim = [lease.partition for lease in claimable[: max(want, 0)]]
    orphans = [
        lease.partition
        for lease in claimable[max(want, 0) :]
        if -lease.expires_in > ORPHAN_GRACE or lease.owner == me
    ]
    release: list[int] = []
    if want < 0 and any(counts[n] < share[n] for n in live if n != me):
        release = sorted(held, reverse=True)[:-want]
    return Plan(claim + orphans, release)


def _order(me: str, partition: int) -> bytes:
    return hashlib.blake2b(f"{me}/{partition}".encode(), digest_size=8).digest()
