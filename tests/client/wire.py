"""An in-process ingress for unit tests: records every request the client makes and answers with
canned responses, through httpx.MockTransport (sync and async)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from perdure.client import AsyncClient, Client

Answer = httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Answers requests in order from ``answers`` (the last one repeats) and records them."""

    answers: list[Answer] = field(default_factory=lambda: [httpx.Response(200, json=None)])
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    @property
    def last(self) -> httpx.Request:
        return self.requests[-1]

    def client(self, **kwargs: Any) -> Client:
        return Client("http://ingress.test", transport=httpx.MockTransport(self), **kwargs)

    def async_client(self, **kwargs: Any) -> AsyncClient:
        async def handler(request: httpx.Request) -> httpx.Response:
            return self(request)

        return AsyncClient("http://ingress.test", transport=httpx.MockTransport(handler), **kwargs)


def ok(value: Any = None, *, status: int = 200) -> httpx.Response:
    return httpx.Response(status, content=json.dumps(value).encode(), headers={"x-restate-id": ID})


def sent(status: str = "Accepted", execution_time: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"invocationId": ID, "status": status}
    if execution_time is not None:
        body["executionTime"] = execution_time
    return httpx.Response(202, json=body, headers={"x-restate-id": ID})


def error(status: int, body: dict[str, Any] | str, source: str | None = None) -> httpx.Response:
    headers = {"x-restate-error-source": source} if source else {}
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


ID = "inv_1aV2rAt6L2rK3yOmXkD0hTCM2xhc5ALOZf"
