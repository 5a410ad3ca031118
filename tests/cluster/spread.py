"""The chaos workload (tests/chaos/workload.py) spread over the nodes of a cluster: each request
goes to a node picked at random among those not known to be down, so every node's ingress takes
calls, sends, attaches and awakeable completions for partitions owned anywhere.

A 503 from a node's ingress means that nothing was applied anywhere (the owner could not be
reached, or the partition is between owners): the workload treats it like a connection that could
not be opened and sends the request again (the exchange is still recorded, so a 503 outside a
fault's window fails the run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from tests.chaos.workload import Workload


class SpreadWorkload(Workload):
    def __init__(self, ingresses: Callable[[], Sequence[str]], *args: Any) -> None:
        """``ingresses``: the ingress URLs to spread over, asked before every request."""
        super().__init__("http://unused.invalid", *args)
        self._ingresses = ingresses

    async def exchange(
        self, method: str, path: str, **kw: Any
    ) -> tuple[httpx.Response | None, bool]:
        urls = self._ingresses()
        base = urls[self.random.randrange(len(urls))] if urls else "http://127.0.0.1:9"
        resp, sent = await super().exchange(method, base + path, **kw)
        if resp is not None and resp.status_code == 503:
            return None, False
        return resp, sent
