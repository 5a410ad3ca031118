"""A small HTTP/1.1 client for the requests between peers (forwarded requests, messages,
registry snapshots): keep-alive connections pooled per peer, bodies of known length.

Why not httpx: a forwarded request is on the hot path of half the keyed requests of a
``--workers 2`` server, and httpx's per-request machinery cost several times what the request
itself costs the owner. The peers are perdure servers (``perdure.http_server``), whose answers
have a ``content-length`` (or no body), or are chunked; nothing else is needed.

Failures are told apart by whether the request may have reached the peer: ``PeerUnreachable``
(the connection could not be made: nothing was sent, a retry is safe) and ``PeerFailed`` (the
connection broke after the request was sent: it may or may not have been applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

IDLE_REUSE = 30.0
"""Seconds a pooled connection may sit idle and still be reused (the server keeps it 75 s)."""
MAX_IDLE_PER_PEER = 64
_NO_BODY = frozenset({204, 304})


class PeerUnreachable(Exception):
    """No connection to the peer: the request was not sent."""


class PeerFailed(Exception):
    """The connection broke after the request was sent (the peer may have applied it)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    headers: list[tuple[str, str]]
    """Names lowercased, in the order received."""
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    idle_since: float = 0.0

    def usable(self) -> bool:
        return (
            not self.writer.is_closing()
            and not self.reader.at_eof()
            and time.monotonic() - self.idle_since < IDLE_REUSE
        )

    def close(self) -> None:
        self.writer.close()


class Http1Client:
    def __init__(self, connect_timeout: float = 10.0) -> None:
        self.connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], list[_Connection]] = {}

    async def request(
        self,
        base_url: str,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes = b"",
    ) -> Answer:
        """Send one request to ``base_url`` (``http://host:port``) and read its answer."""
        address = _address(base_url)
        conn = self._take(address)
        if conn is None:
            conn = await self._connect(address)
        head = [f"{method} {target} HTTP/1.1", f"host: {address[0]}:{address[1]}"]
        head += [f"{k}: {v}" for k, v in headers if k.lower() not in ("host", "content-length")]
        head.append(f"content-length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            conn.writer.write(data)
            answer, reusable = await _read_answer(conn.reader, method)
        except (OSError, EOFError, asyncio.LimitOverrunError, ValueError) as exc:
            conn.close()
            raise PeerFailed(f"{base_url}: {exc!r}") from None
        except BaseException:
            conn.close()  # cancelled mid-exchange: the connection's state is unknown
            raise
        if reusable:
            self._give_back(address, conn)
        else:
            conn.close()
        return answer

    def _take(self, address: tuple[str, int]) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _give_back(self, address: tuple[str, int], conn: _Connection) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) >= MAX_IDLE_PER_PEER:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, address: tuple[str, int]) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(*address, limit=1 << 20)
        except (OSError, TimeoutError) as exc:
            raise PeerUnreachable(f"{address[0]}:{address[1]}: {exc!r}") from None
        return _Connection(reader, writer)

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
                with contextlib.suppress(OSError):
                    await conn.writer.wait_closed()
        self._idle.clear()


def _address(base_url: str) -> tuple[str, int]:
    parts = urlsplit(base_url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"a peer URL must be http://HOST:PORT, not {base_url!r}")
    return parts.hostname, parts.port or 80


async def _read_answer(reader: asyncio.StreamReader, method: str) -> tuple[Answer, bool]:
    """The answer and whether the connection may carry another request."""
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status = int(rest.split(" ", 1)[0])
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    fields = dict(headers)
    keep = version == "HTTP/1.1" and fields.get("connection", "").lower() != "close"
    if status in _NO_BODY or 100 <= status < 200 or method == "HEAD":
        return Answer(status, headers, b""), keep
    if "chunked" in fields.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers from perdure's server
                break
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(chunks)
    elif "content-length" in fields:
        body = await reader.readexactly(int(fields["content-length"]))
    else:
        return Answer(status, headers, await reader.read()), False
    return Answer(status, headers, body), keep
