"""Partitions: the u64 partition-key space cut into ``count`` equal ranges.

Every stored row carries a partition key (an invocation id's, or an object/workflow key's), so a
row belongs to exactly one partition: partition ``p`` holds the keys ``k`` with
``k * count >> 64 == p``. The count is fixed when a store is created (it is recorded in the
store's meta; see ``Storage.partition_count``): moving a key to another partition would move its
invocations, state and timers, so a different count later is refused (``PartitionCountMismatch``).

An engine owns a set of partitions (all of them in a single process); everything that touches an
invocation of a partition it does not own goes out as a message (see ``engine.messages``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from perdure.protocol import InvocationId

DEFAULT_PARTITIONS = 16
MAX_PARTITIONS = 4096
"""A bound that keeps per-partition bookkeeping (outboxes, dedup rows, leases) small."""
_KEY_SPACE = 1 << 64


class PartitionCountMismatch(Exception):
    """A store was created with another partition count than the one asked for now."""

    def __init__(self, stored: int, requested: int) -> None:
        super().__init__(
            f"the store was created with {stored} partitions, not {requested}: the partition "
            "count is fixed when a store is created; drop --partitions (or pass "
            f"--partitions {stored}), or use another --data-dir"
        )
        self.stored = stored
        self.requested = requested


def check_count(count: int) -> int:
    """``count`` if it is a valid partition count, else a ValueError saying what to fix."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_PARTITIONS:
        raise ValueError(f"the partition count must be an integer from 1 to {MAX_PARTITIONS}")
    return count


@dataclass(frozen=True, slots=True)
class PartitionMap:
    """Which partition a partition key falls in, and which keys a partition holds."""

    count: int = DEFAULT_PARTITIONS

    def __post_init__(self) -> None:
        check_count(self.count)

    @property
    def all(self) -> frozenset[int]:
        return frozenset(range(self.count))

    def partition_of(self, pk: int) -> int:
        """The partition of the u64 partition key ``pk``."""
        return (pk * self.count) >> 64

    def partition_of_id(self, invocation_id: InvocationId) -> int:
        return self.partition_of(invocation_id.partition_key)

    def key_range(self, p: int) -> range:
        """The partition keys of partition ``p`` (start inclusive, stop exclusive)."""
        if not 0 <= p < self.count:
            raise ValueError(f"partition {p} is not in 0..{self.count - 1}")
        start = -(-p * _KEY_SPACE // self.count)  # ceil: the first k with k*count >> 64 == p
        stop = -(-(p + 1) * _KEY_SPACE // self.count)
        return range(start, stop)

    def random_key(self, p: int) -> int:
        """A random partition key of partition ``p`` (an unkeyed invocation placed in ``p``)."""
        keys = self.key_range(p)
        return keys.start + int.from_bytes(os.urandom(8), "big") % (keys.stop - keys.start)
