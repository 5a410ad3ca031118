"""Requests sent on to the process that owns their partition: ingress and admin requests proxied
to a peer (one hop at most, marked ``x-perdure-forwarded``), and the internal calls between
peers (messages, registry snapshots, listings), signed with the peers' shared secret.

A forwarded request is answered exactly as the owner answered it (status, headers such as
``x-restate-id``, body). When the owner cannot be reached the answer is a 503 (nothing was sent,
so retrying is safe). When it fails after the request was sent (it died), the client's
connection is broken as well (``ConnectionAbortedError``, which the HTTP server turns into a
closed connection or a reset stream): the request may or may not have been applied, exactly as
when a single server dies mid-request, and the client decides as it would then.
"""

from __future__ import annotations

import asyncio
import logging

from perdure.server.api.http import Request, Response
from perdure.server.partitions import PartitionMap
from perdure.server.routing.http1 import Answer, Http1Client, PeerFailed, PeerUnreachable
from perdure.server.routing.router import Peer, Router

log = logging.getLogger("perdure.server.routing")

FORWARDED = "x-perdure-forwarded"
"""Set on a request proxied to its owner (the sender's name): a second hop is refused."""
PEER_SECRET = "x-perdure-peer-secret"
"""The secret peers share; ``/internal/...`` refuses a request without it."""

_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
     "content-length", "proxy-connection", "http2-settings"}
)  # fmt: skip
CONNECT_ATTEMPTS = 20
"""How often a connection refused (a peer restarting) is retried, 0.25 s apart."""


def json_error(status: int, message: str, *, ingress: bool) -> Response:
    """An error in the ingress's or the admin API's JSON shape."""
    if ingress:
        return Response.json(
            status,
            {"code": status, "message": message, "source": "ingress"},
            [("x-restate-error-source", "ingress")],
        )
    return Response.json(status, {"message": message, "restate_code": None})


class Forwarder:
    """One process's link to its peers: the partition of a key, and proxying to the owner."""

    def __init__(
        self,
        router: Router,
        *,
        name: str,
        secret: str | None = None,
        admin_token: str | None = None,
    ) -> None:
        self.router = router
        self.name = name
        self.secret = secret
        self.admin_token = admin_token
        self.client = Http1Client()
        self._partitions: PartitionMap | None = None

    def partition_of(self, pk: int) -> int:
        """The partition of a partition key."""
        count = self.router.partition_count
        if self._partitions is None or self._partitions.count != count:
            self._partitions = PartitionMap(count)
        return self._partitions.partition_of(pk)

    def owner_of(self, pk: int) -> Peer | None:
        """The peer owning the partition of ``pk``; None when this process does."""
        return self.router.owner(self.partition_of(pk))

    async def route(self, pk: int, request: Request, *, ingress: bool) -> Response | None:
        """The owner's answer when the partition of ``pk`` is not ours; None to act locally."""
        peer = self.owner_of(pk)
        if peer is None:
            return None
        came_from = request.header(FORWARDED)
        if came_from is not None:
            # The sender thought we own it, we think the peer does: ownership is moving (or the
            # processes disagree). Never a second hop: the client retries.
            return json_error(
                503,
                f"partition {self.partition_of(pk)} is not owned here ({self.name}, forwarded "
                f"by {came_from}); retry",
                ingress=ingress,
            )
        return await self.proxy(peer, request, ingress=ingress)

    async def proxy(self, peer: Peer, request: Request, *, ingress: bool) -> Response:
        """Send ``request`` to ``peer``'s ingress (or admin API) and return its answer as is;
        ``ConnectionAbortedError`` when the peer failed after the request was sent."""
        base = peer.ingress_url if ingress else peer.admin_url
        headers = [(k, v) for k, v in request.headers if k not in _HOP_BY_HOP]
        headers.append((FORWARDED, self.name))
        try:
            answer = await self._send(base, request.method, _target(request), headers,
                                      request.body)  # fmt: skip
        except PeerUnreachable as exc:
            log.warning("cannot reach %s at %s: %s", peer.name, base, exc)
            return json_error(
                503, f"the owner of this request ({peer.name}) cannot be reached; retry",
                ingress=ingress,
            )  # fmt: skip
        except PeerFailed as exc:
            log.warning("%s failed while handling a forwarded request: %s", peer.name, exc)
            raise ConnectionAbortedError(f"{peer.name} failed while handling a request") from None
        return _response(answer)

    async def internal(
        self, peer: Peer, method: str, path: str, body: bytes = b"", *, timeout: float = 30.0
    ) -> Answer:
        """An ``/internal/...`` call to ``peer``'s admin listener, signed as a peer's; raises
        ``PeerUnreachable``/``PeerFailed``, or ``TimeoutError``."""
        headers = [(FORWARDED, self.name), ("content-type", "application/json")]
        if self.secret is not None:
            headers.append((PEER_SECRET, self.secret))
        if self.admin_token is not None:
            headers.append(("authorization", f"Bearer {self.admin_token}"))
        async with asyncio.timeout(timeout):
            return await self._send(peer.admin_url, method, path, headers, body)

    async def admin_get(self, peer: Peer, request: Request) -> Response:
        """``request`` (a listing) as ``peer`` answers it locally, with this process's admin
        token; raises ``PeerUnreachable``/``PeerFailed``."""
        headers = [(k, v) for k, v in request.headers if k not in _HOP_BY_HOP]
        if self.admin_token is not None:
            headers = [(k, v) for k, v in headers if k != "authorization"]
            headers.append(("authorization", f"Bearer {self.admin_token}"))
        headers.append((FORWARDED, self.name))
        answer = await self._send(peer.admin_url, request.method, _target(request), headers,
                                  request.body)  # fmt: skip
        return _response(answer)

    async def _send(
        self, base: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
    ) -> Answer:
        for attempt in range(CONNECT_ATTEMPTS):
            try:
                return await self.client.request(base, method, target, headers, body)
            except PeerUnreachable:
                # Nothing was sent: the peer is (re)starting. Try again shortly.
                if attempt == CONNECT_ATTEMPTS - 1:
                    raise
                await asyncio.sleep(0.25)
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await self.client.aclose()


PeerError = (PeerUnreachable, PeerFailed, TimeoutError)
"""What a call to a peer may raise when the peer is away."""


def _target(request: Request) -> str:
    return request.raw_path + (f"?{request.query_string}" if request.query_string else "")


def _response(answer: Answer) -> Response:
    return Response(
        answer.status, answer.body, [(k, v) for k, v in answer.headers if k not in _HOP_BY_HOP]
    )
