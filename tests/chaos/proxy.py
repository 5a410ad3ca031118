"""A TCP proxy in front of the deployment (runs on the runner's event loop). ``blackhole()``
makes every connection open at that moment go silent: the proxy stops reading from and writing
to both sides but keeps the sockets open, as a dead NAT entry or a hung middlebox would. New
connections are forwarded normally, so a server that drops a silent connection and opens a new
one recovers; one that keeps using it is stuck."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class _Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    silent: bool = False


class BlackholeProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._held: list[_Link] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def live(self) -> int:
        """How many connections are forwarded now."""
        return sum(not link.silent for link in self._links)

    def blackhole(self) -> int:
        """Silence every open connection; returns how many went silent."""
        live = [link for link in self._links if not link.silent]
        for link in live:
            link.silent = True
            for task in link.tasks:
                task.cancel()
        self._held.extend(live)
        return len(live)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        links = list(self._links)
        for link in links:
            for task in link.tasks:
                task.cancel()
            for writer in (link.client, link.upstream):
                writer.close()
        for link in links:
            await asyncio.gather(*link.tasks, return_exceptions=True)
            for writer in (link.client, link.upstream):
                with contextlib.suppress(OSError, RuntimeError):
                    await writer.wait_closed()
        self._links.clear()
        self._held.clear()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.append(link)
        link.tasks = [
            asyncio.create_task(self._pump(reader, up_writer, link)),
            asyncio.create_task(self._pump(up_reader, writer, link)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not link.silent:  # a silent link keeps both sockets open and unread
                for w in (link.client, link.upstream):
                    with contextlib.suppress(OSError, RuntimeError):
                        w.close()
                with contextlib.suppress(ValueError):
                    self._links.remove(link)
