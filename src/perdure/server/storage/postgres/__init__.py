"""PostgreSQL as perdure's durable store (``--store postgresql://...``), behind a node-local
SQLite working copy: see store.py. Needs the optional driver: ``pip install 'perdure[postgres]'``
(the module imports it only when a store is opened)."""

from perdure.server.storage.postgres.fence import FENCED_SQLSTATE, Fence, Fenced, WriterFence
from perdure.server.storage.postgres.store import (
    PostgresStore,
    StoreUnavailable,
    partition_ranges,
)

__all__ = [
    "FENCED_SQLSTATE",
    "Fence",
    "Fenced",
    "PostgresStore",
    "StoreUnavailable",
    "WriterFence",
    "partition_ranges",
]
