"""The garbage collector's settings for a long-running server process: ``perdure server`` (and
its workers) and a deployment served by ``perdure.serve``.

The cyclic garbage collector: what is loaded at start (modules, protobuf descriptors, the
registry: tens of thousands of objects) is frozen out of it, as it would otherwise be traced
again at every full collection; and the young generation is collected less often, so that the
objects of the requests in flight (a few dozen invocations' futures, records and frames) mostly
die by reference counting before a collection traces and promotes them. Together about 3% of
the server's CPU per noop invocation; in a deployment, full collections cost ~20 ms each.
"""

from __future__ import annotations

import gc

GC_THRESHOLD = 10_000
"""Net new objects between two young-generation collections (Python's default: 700)."""


def tune_gc() -> None:
    """Call once the process's modules (and app) are loaded, before it serves."""
    gc.freeze()
    threshold, *older = gc.get_threshold()
    if 0 < threshold < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *older)
