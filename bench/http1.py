"""A lean HTTP/1.1 client for the load generator: keep-alive connections on asyncio protocols, a
request costs a few tens of microseconds of CPU (httpx spends several hundred, enough to make the
load generator the bottleneck at c=32 on 2 cores).

It offers the small part of ``httpx.AsyncClient`` the cases use: ``get``/``post`` with a path,
``json=`` and ``headers=``, answering a response with ``status_code``, ``text`` and ``json()``.
Bodies are Content-Length or chunked; anything else about HTTP (redirects, cookies, compression,
TLS) is left out on purpose: the bench only talks to ingresses on loopback.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from typing import Any
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 this client understands."""


class Response:
    __slots__ = ("content", "headers", "status_code")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return jsonlib.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise ProtocolError(f"HTTP {self.status_code}: {self.text[:80]}")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Response] | None = None
        self._head: tuple[int, dict[str, str]] | None = None
        self._length = -1  # body bytes expected; -2: chunked
        self._chunks = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionResetError("connection closed"))

    def request(self, data: bytes) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        try:
            self._parse()
        except ProtocolError as exc:
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_exception(exc)
            self.close()

    def _parse(self) -> None:
        buf = self._buffer
        if self._head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
            del buf[: end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
                raise ProtocolError(f"bad status line {lines[0]!r}")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            self._head = (int(parts[1]), headers)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                self._length = -2
            else:
                self._length = int(headers.get("content-length", "0"))
        if self._length >= 0:
            if len(buf) < self._length:
                return
            body = bytes(buf[: self._length])
            del buf[: self._length]
            self._finish(body)
            return
        while True:  # chunked
            end = buf.find(b"\r\n")
            if end < 0:
                return
            size = int(bytes(buf[:end]).split(b";", 1)[0], 16)
            if size == 0:
                trailer = buf.find(b"\r\n\r\n", end)
                if trailer < 0:
                    return
                del buf[: trailer + 4]
                body = bytes(self._chunks)
                self._chunks.clear()
                self._finish(body)
                return
            if len(buf) < end + 2 + size + 2:
                return
            self._chunks += buf[end + 2 : end + 2 + size]
            del buf[: end + 2 + size + 2]

    def _finish(self, body: bytes) -> None:
        assert self._head is not None
        status, headers = self._head
        self._head = None
        if headers.get("connection", "").lower() == "close":
            self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(Response(status, headers, body))

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """A pool of keep-alive HTTP/1.1 connections to one ``base_url`` (http only)."""

    def __init__(self, base_url: str, *, timeout: float = 60.0) -> None:
        url = urlsplit(base_url)
        if url.scheme != "http" or url.hostname is None:
            raise ValueError(f"the lean client speaks plain http only, not {base_url!r}")
        self._host = url.hostname
        self._port = url.port or 80
        self._prefix = url.path.rstrip("/")
        self._authority = f"{self._host}:{self._port}".encode()
        self._timeout = timeout
        self._idle: list[_Connection] = []
        self._all: set[_Connection] = set()

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()

    async def get(self, path: str, *, headers: dict[str, str] | None = None) -> Response:
        return await self.request("GET", path, headers=headers)

    async def post(
        self, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        return await self.request("POST", path, json=json, headers=headers)

    async def request(
        self, method: str, path: str, *, json: Any = None, headers: dict[str, str] | None = None
    ) -> Response:
        head = [f"{method} {self._prefix}{path} HTTP/1.1\r\nhost: ".encode(), self._authority]
        body = b""
        if json is not None:
            body = jsonlib.dumps(json).encode()
            head.append(b"\r\ncontent-type: application/json")
        if body or method == "POST":
            head.append(b"\r\ncontent-length: %d" % len(body))
        for name, value in (headers or {}).items():
            head.append(f"\r\n{name}: {value}".encode())
        head.append(b"\r\n\r\n")
        head.append(body)
        conn = await self._connection()
        try:
            async with asyncio.timeout(self._timeout):
                response = await conn.request(b"".join(head))
        except BaseException:
            conn.close()
            self._all.discard(conn)
            raise
        if conn.closed:
            self._all.discard(conn)
        else:
            self._idle.append(conn)
        return response

    async def _connection(self) -> _Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._all.discard(conn)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._timeout):
            _, conn = await loop.create_connection(_Connection, self._host, self._port)
        self._all.add(conn)
        return conn
