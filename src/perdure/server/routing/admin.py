"""The admin API when partitions are spread over processes: every process answers for all.

* actions on one invocation (describe, cancel, kill, purge, pause, resume) and state edits go to
  the owner of its partition;
* ``GET /invocations`` asks every peer for its newest invocations and merges them;
* registry changes go to worker 0, which pushes them to everyone (``registry_sync``);
* ``POST /query`` runs here, over this worker's store and the other workers' store files, opened
  read-only (so a join, an aggregate or a LIMIT covers all of them, which merging per-worker
  answers could not do), with the live attempts of every worker;
* ``/internal/...`` serves the peers: messages between partitions, registry snapshots, live
  attempts. It needs the peers' shared secret (``x-perdure-peer-secret``), on top of the admin
  token when one is set.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from perdure.protocol import InvalidIdError, InvocationId, partition_key_of
from perdure.server.api.http import Request, Response
from perdure.server.routing.forwarding import (
    FORWARDED,
    PEER_SECRET,
    Forwarder,
    PeerError,
    json_error,
)
from perdure.server.routing.registry_sync import REGISTRY_PATH, RegistrySync
from perdure.server.storage.query import run_query

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine
    from perdure.server.invoker.invoker import Invoker

log = logging.getLogger("perdure.server.routing")
LIVE_PATH = "/internal/live"
MessageReceiver = Callable[[int, Request], Awaitable[Response]]
"""Serves ``POST /internal/partitions/{p}/messages`` (see ``transport``)."""


class AdminRouting:
    def __init__(
        self,
        engine: Engine,
        invoker: Invoker,
        forwarder: Forwarder,
        registry: RegistrySync,
        *,
        stores: Sequence[str] = (),
        receive_messages: MessageReceiver | None = None,
    ) -> None:
        self.engine = engine
        self.invoker = invoker
        self.forwarder = forwarder
        self.registry = registry
        self.stores = tuple(stores)
        """Every worker's SQLite file, this one's first (read by ``/query``); empty: the
        engine answers ``/query`` alone (a store that holds every partition)."""
        self.receive_messages = receive_messages

    async def handle(
        self, parts: list[str], request: Request, local: Callable[[], Awaitable[Response]]
    ) -> Response:
        method = request.method
        forwarded = request.header(FORWARDED) is not None
        match parts:
            case ["internal", *rest]:
                return await self._internal(rest, request)
            case ["invocations", text, *_] if method in ("GET", "PATCH", "DELETE"):
                try:
                    pk = InvocationId.parse(text).partition_key
                except InvalidIdError:
                    return await local()  # answered 400 there
                return await self._owner(pk, request) or await local()
            case ["invocations"] if method == "GET" and not forwarded:
                return await self._list_invocations(request, local)
            case ["services", _, "state"] if method == "POST":
                key = _object_key(request.body)
                if key is not None:
                    return await self._owner(partition_key_of(key), request) or await local()
            case ["deployments"] if method == "POST":
                return await self._registry_change(request, local)
            case ["deployments", _] if method == "DELETE":
                return await self._registry_change(request, local)
            case ["services", _] if method == "PATCH":
                return await self._registry_change(request, local)
            case ["query"] if method == "POST":
                return await self._query(request)
        return await local()

    async def _owner(self, pk: int, request: Request) -> Response | None:
        return await self.forwarder.route(pk, request, ingress=False)

    # -- registry changes --------------------------------------------------------------------------

    async def _registry_change(
        self, request: Request, local: Callable[[], Awaitable[Response]]
    ) -> Response:
        leader = self.registry.leader
        if leader is not None:
            if request.header(FORWARDED) is not None:
                return json_error(503, "registry changes are made by worker 0; retry",
                                  ingress=False)  # fmt: skip
            return await self.forwarder.proxy(leader, request, ingress=False)
        response = await local()
        if 200 <= response.status < 300 and not _dry_run(request):
            await self.registry.changed()
        return response

    # -- listings -------------------------------------------------------------------------------

    async def _list_invocations(
        self, request: Request, local: Callable[[], Awaitable[Response]]
    ) -> Response:
        mine = await local()
        if mine.status != 200:
            return mine  # a bad filter or limit: the same answer everywhere
        peers = self.forwarder.router.peers()
        try:
            theirs = await asyncio.wait_for(
                asyncio.gather(*(self.forwarder.admin_get(p, request) for p in peers)), 30.0
            )
        except PeerError as exc:
            return json_error(503, f"a worker did not answer the listing ({exc!r}); retry",
                              ingress=False)  # fmt: skip
        rows: list[dict[str, Any]] = json.loads(mine.body)["invocations"]
        for answer in theirs:
            if answer.status != 200:
                return answer
            rows.extend(json.loads(answer.body)["invocations"])
        rows.sort(key=lambda r: (r.get("created_at") or "", r.get("id") or ""), reverse=True)
        limit_text = request.query().get("limit")
        limit = int(limit_text) if limit_text else 1000  # validated by the local answer
        return Response.json(200, {"invocations": rows[:limit]})

    async def _query(self, request: Request) -> Response:
        from perdure.server.api.query import query  # noqa: PLC0415

        live = {str(i) for i in self.invoker.attempts}
        for peer in self.forwarder.router.peers():
            try:
                answer = await self.forwarder.internal(peer, "GET", LIVE_PATH, timeout=10.0)
            except PeerError:
                continue  # a worker that is down has no attempts in flight
            if answer.status == 200:
                live.update(json.loads(answer.body))
        if not self.stores:
            return await query(request, self.engine, live)
        own, *others = self.stores

        def run(sql: str, alive: tuple[str, ...], timeout: float) -> list[dict[str, Any]]:
            return run_query(own, sql, live=alive, timeout=timeout, others=others)

        return await query(request, self.engine, live, run=run)

    # -- between peers -----------------------------------------------------------------------------

    async def _internal(self, rest: list[str], request: Request) -> Response:
        secret = self.forwarder.secret
        given = request.header(PEER_SECRET)
        if secret is None or given is None or not hmac.compare_digest(given, secret):
            return json_error(403, "/internal is for the server's own peers", ingress=False)
        match rest, request.method:
            case ["partitions", p, "messages"], "POST" if p.isascii() and p.isdigit():
                if self.receive_messages is None:
                    return json_error(501, "this server does not take messages", ingress=False)
                return await self.receive_messages(int(p), request)
            case ["registry"], "GET":
                return Response(200, self.registry.snapshot(),
                                [("content-type", "application/json")])  # fmt: skip
            case ["registry"], "PUT":
                await self.registry.apply(request.body)
                return Response(204)
            case ["live"], "GET":
                return Response.json(200, [str(i) for i in self.invoker.attempts])
        return json_error(404, f"not found: {request.method} {request.path}", ingress=False)


def _object_key(body: bytes) -> str | None:
    try:
        value = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        return None
    key = value.get("object_key") if isinstance(value, dict) else None
    return key if isinstance(key, str) else None


def _dry_run(request: Request) -> bool:
    if request.method != "POST":
        return False
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(body, dict) and bool(body.get("dry_run"))


__all__ = ["LIVE_PATH", "REGISTRY_PATH", "AdminRouting"]
