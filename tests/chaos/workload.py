"""The chaos workload: actors that keep issuing requests of every kind through the ingress while
faults happen, recording what each request was, what the client saw, and every HTTP exchange
(time, target, status or transport error) for the checks.

A request whose connection could not be opened was never sent and is simply tried again. A
request that broke after it was sent has an unknown outcome: a non-idempotent one is not retried
(its invocation, if the server accepted it, is found through the ledger and checked like any
other); an idempotent one (an idempotency key, a workflow's run send and click, an awakeable's
resolution) is retried until it gets an answer.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos import ledger

HOT_KEYS = ("hot-a", "hot-b", "hot-c")
CHAIN_DEPTH = 3

# kind -> weight
KINDS = {
    "call": 3,
    "send": 3,
    "delayed_send": 2,
    "idempotent": 2,
    "counter_call": 2,
    "counter_send": 2,
    "chain": 1,
    "workflow": 1,
    "awakeable": 1,
}


@dataclass
class Request:
    """One logical request of the workload."""

    tag: str
    kind: str
    body: Any
    accepted: bool = False
    """The server acknowledged it (200 for a call, 202 for a send)."""
    unknown: bool = False
    """The connection broke after the request was sent: accepted or not, nobody knows."""
    invocation_id: str | None = None
    response: Any = None
    """A call's result as the caller got it."""
    due: float | None = None
    """A delayed send: the earliest time it may start (wall clock)."""
    problems: list[str] = field(default_factory=list)


@dataclass
class Exchange:
    """One HTTP request/response (or transport error) at wall-clock time ``t``."""

    t: float
    what: str
    status: int | None
    error: str | None = None


class Workload:
    def __init__(self, ingress: str, ledger_path: Any, seed: int, stuck_timeout: float) -> None:
        self.ingress = ingress
        self.random = random.Random(seed)
        self.requests: list[Request] = []
        self.exchanges: list[Exchange] = []
        self.in_flight: dict[object, str] = {}
        """The exchanges under way (what an actor still waits for at the end is stuck)."""
        self.stuck_timeout = stuck_timeout
        self._stop = asyncio.Event()
        self._deadline: float | None = None
        self._serial = 0
        self._tail = ledger.Tail(ledger_path)
        self._awakeables: dict[str, str] = {}
        self._http = httpx.AsyncClient(
            base_url=ingress,
            timeout=httpx.Timeout(120.0, connect=5.0),
            limits=httpx.Limits(max_keepalive_connections=0, max_connections=200),
        )

    async def close(self) -> None:
        await self._http.aclose()

    def stop(self) -> None:
        self._stop.set()
        self._deadline = time.monotonic() + self.stuck_timeout

    def _waiting(self) -> bool:
        """Whether to keep retrying: always while the faults go on, then up to the stuck
        timeout (a request may legitimately wait through many faults)."""
        return self._deadline is None or time.monotonic() < self._deadline

    async def actor(self, pause: float) -> None:
        kinds, weights = list(KINDS), list(KINDS.values())
        while not self._stop.is_set():
            kind = self.random.choices(kinds, weights)[0]
            await getattr(self, f"_{kind}")(self._new(kind))
            await asyncio.sleep(self.random.uniform(0, pause))

    # -- HTTP ----------------------------------------------------------------------------------

    async def exchange(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
        content: bytes | None = None,
    ) -> tuple[httpx.Response | None, bool]:
        """One HTTP exchange; returns (response, sent). ``sent`` is False when the connection
        could not be opened (the request certainly did not reach the server)."""
        key = object()
        self.in_flight[key] = f"{method} {path} (since {time.time():.3f})"
        try:
            resp = await self._http.request(
                method,
                path,
                json=json,
                headers=headers,
                content=content,
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.ConnectError as exc:
            self.exchanges.append(Exchange(time.time(), f"{method} {path}", None, repr(exc)))
            return None, False
        except httpx.HTTPError as exc:
            self.exchanges.append(Exchange(time.time(), f"{method} {path}", None, repr(exc)))
            return None, True
        finally:
            del self.in_flight[key]
        self.exchanges.append(
            Exchange(
                time.time(),
                f"{method} {path}",
                resp.status_code,
                None if resp.status_code < 400 else resp.text[:300],
            )
        )
        return resp, True

    async def _once(self, req: Request, path: str, expect: int, **kw: Any) -> httpx.Response | None:
        """A non-idempotent request: retried only while it could not be sent."""
        while True:
            resp, sent = await self.exchange("POST", path, **kw)
            if resp is None and not sent:
                if self._stop.is_set():
                    return None
                await asyncio.sleep(0.1)
                continue
            if resp is None:
                req.unknown = True
                return None
            if resp.status_code != expect:
                req.problems.append(f"POST {path}: {resp.status_code} {resp.text[:200]}")
                return None
            req.accepted = True
            if expect == 202:
                req.invocation_id = resp.json()["invocationId"]
            else:
                req.invocation_id = resp.headers.get("x-restate-id")
                req.response = resp.json() if resp.content else None
            return resp

    async def _until_answered(
        self, req: Request, path: str, ok: set[int], **kw: Any
    ) -> httpx.Response | None:
        """An idempotent request: retried after any failure until an answer in ``ok``."""
        while self._waiting():
            resp, _ = await self.exchange("POST", path, **kw)
            if resp is not None and resp.status_code in ok:
                return resp
            if resp is not None and resp.status_code < 500:
                req.problems.append(f"POST {path}: {resp.status_code} {resp.text[:200]}")
                return None
            await asyncio.sleep(0.2)
        req.problems.append(f"POST {path}: no answer {self.stuck_timeout}s after the faults")
        return None

    # -- the kinds -----------------------------------------------------------------------------

    def _new(self, kind: str) -> Request:
        self._serial += 1
        req = Request(f"{kind}-{self._serial}", kind, None)
        self.requests.append(req)
        return req

    def _process_job(self, tag: str) -> dict[str, Any]:
        return {
            "tag": tag,
            "steps": self.random.randint(1, 3),
            "sleep_ms": self.random.choice([0, 0, 50, 200]),
        }

    async def _call(self, req: Request) -> None:
        req.body = self._process_job(req.tag)
        await self._once(req, "/Work/process", 200, json=req.body)

    async def _send(self, req: Request) -> None:
        req.body = self._process_job(req.tag)
        await self._once(req, "/Work/process/send", 202, json=req.body)

    async def _delayed_send(self, req: Request) -> None:
        req.body = self._process_job(req.tag)
        delay_ms = self.random.randint(200, 2000)
        before = time.time()
        if await self._once(req, f"/Work/process/send?delay={delay_ms}ms", 202, json=req.body):
            req.due = before + delay_ms / 1000

    async def _idempotent(self, req: Request) -> None:
        req.body = self._process_job(req.tag)
        headers = {"idempotency-key": f"key-{req.tag}"}
        answers = []
        for _ in range(2):  # the second is a deliberate duplicate: same invocation, same result
            resp = await self._until_answered(
                req, "/Work/process", {200}, json=req.body, headers=headers
            )
            if resp is None:
                return
            answers.append((resp.headers.get("x-restate-id"), resp.json()))
        req.accepted = True
        req.invocation_id, req.response = answers[0]
        if answers[1] != answers[0]:
            req.problems.append(f"idempotent duplicate answered {answers[1]}, first {answers[0]}")

    async def _counter(self, req: Request, suffix: str, expect: int) -> None:
        req.body = {"tag": req.tag, "delta": self.random.randint(1, 9)}
        key = self.random.choice(HOT_KEYS)
        await self._once(req, f"/Counter/{key}/add{suffix}", expect, json=req.body)

    async def _counter_call(self, req: Request) -> None:
        await self._counter(req, "", 200)

    async def _counter_send(self, req: Request) -> None:
        await self._counter(req, "/send", 202)

    async def _chain(self, req: Request) -> None:
        req.body = {"tag": req.tag, "depth": CHAIN_DEPTH}
        await self._once(req, "/Work/chain", 200, json=req.body)

    async def _send_surely(self, req: Request, path: str, **kw: Any) -> bool:
        """A send made idempotent (workflow key, idempotency key): retried until accepted, so
        what follows (completing its promise or awakeable) never waits on a send that may not
        exist."""
        resp = await self._until_answered(req, path, {202}, json=req.body, **kw)
        if resp is None:
            return False
        req.accepted = True
        req.invocation_id = resp.json()["invocationId"]
        return True

    async def _workflow(self, req: Request) -> None:
        req.body = {"tag": req.tag}
        if not await self._send_surely(req, f"/Signup/{req.tag}/run/send"):
            return
        headers = {"idempotency-key": f"click-{req.tag}"}
        await self._until_answered(
            req, f"/Signup/{req.tag}/click", {200}, json=f"clicked-{req.tag}", headers=headers
        )

    async def _awakeable(self, req: Request) -> None:
        req.body = {"tag": req.tag}
        headers = {"idempotency-key": f"key-{req.tag}"}
        if not await self._send_surely(req, "/Work/approval/send", headers=headers):
            return
        while (awakeable_id := self._awakeable_id(req.tag)) is None:
            if not self._waiting():
                req.problems.append("its awakeable id never reached the ledger")
                return
            await asyncio.sleep(0.1)
        await self._until_answered(
            req,
            f"/restate/awakeables/{awakeable_id}/resolve",
            {200, 202},
            json=f"approved-{req.tag}",
        )

    def _awakeable_id(self, tag: str) -> str | None:
        for record in self._tail.new_records():
            if record["kind"] == "awakeable":
                self._awakeables[record["tag"]] = record["id"]
        return self._awakeables.get(tag)
