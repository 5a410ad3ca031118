"""The parts of ``perdure.server.routing`` on their own: who owns a partition, the data dir's
worker count, and the peer client's two kinds of failure (nothing sent, or maybe applied)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from perdure.server.routing.http1 import Http1Client, PeerFailed, PeerUnreachable
from perdure.server.routing.layout import LayoutError, claim
from perdure.server.routing.router import Peer, StaticRouter, worker_partitions
from tests.support.processes import free_port

PEERS = [Peer(f"worker-{i}", f"http://127.0.0.1:{8000 + i}", f"http://127.0.0.1:{9000 + i}")
         for i in range(3)]  # fmt: skip


def test_workers_split_the_partitions_and_each_partition_has_one_owner() -> None:
    routers = [StaticRouter(i, PEERS, 16) for i in range(3)]
    assert worker_partitions(1, 3, 16) == frozenset({1, 4, 7, 10, 13})
    for p in range(16):
        locals_ = [r.index for r in routers if r.owner(p) is None]
        assert locals_ == [p % 3]
        for r in routers:
            assert r.owner(p) in (None, PEERS[p % 3])
    assert [p.name for p in routers[1].peers()] == ["worker-0", "worker-2"]
    assert routers[0].leader is None and routers[2].leader == PEERS[0]


def test_the_data_dir_keeps_its_worker_and_partition_counts(tmp_path: Path) -> None:
    assert claim(tmp_path / "a", 1) is None  # one worker: nothing recorded
    assert claim(tmp_path / "b", 2) == 16
    assert json.loads((tmp_path / "b" / "workers.json").read_text()) == {
        "workers": 2, "partitions": 16,
    }  # fmt: skip
    assert claim(tmp_path / "b", 2) == 16
    assert claim(tmp_path / "b", 2, 16) == 16
    for workers, partitions, message in [
        (3, None, "created with --workers 2; start it with --workers 2"),
        (1, None, "created with --workers 2; start it with --workers 2"),
        (2, 8, "created with 16 partitions, not 8"),
    ]:
        with pytest.raises(LayoutError, match=message):
            claim(tmp_path / "b", workers, partitions)
    single = tmp_path / "c"
    single.mkdir()
    (single / "perdure.sqlite3").write_bytes(b"")
    with pytest.raises(LayoutError, match="created with --workers 1"):
        claim(single, 2)
    with pytest.raises(LayoutError, match="at least as many partitions"):
        claim(tmp_path / "d", 4, 2)


async def _serve(handler: object) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)  # type: ignore[arg-type]
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def test_the_peer_client_reuses_connections_and_reads_both_body_forms() -> None:
    async def scenario() -> None:
        connections = 0

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    break
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                if head.startswith(b"GET /chunked"):
                    writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                                 b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")  # fmt: skip
                else:
                    writer.write(b"HTTP/1.1 201 Created\r\nx-restate-id: inv_1\r\n"
                                 b"content-length: %d\r\n\r\n%s" % (len(body), body))  # fmt: skip
                await writer.drain()
            writer.close()

        server, url = await _serve(answer)
        client = Http1Client()
        try:
            for n in range(3):
                got = await client.request(url, "POST", "/x", [("a", "b")], b"body%d" % n)
                assert (got.status, got.body) == (201, b"body%d" % n)
                assert ("x-restate-id", "inv_1") in got.headers
            chunked = await client.request(url, "GET", "/chunked", [])
            assert chunked.body == b"abcde"
            assert connections == 1
        finally:
            await client.aclose()
            server.close()

    asyncio.run(scenario())


def test_the_peer_client_tells_nothing_sent_from_maybe_applied() -> None:
    async def scenario() -> None:
        async def vanish(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")  # the request arrived, then the peer died
            writer.close()

        server, url = await _serve(vanish)
        client = Http1Client(connect_timeout=2.0)
        try:
            with pytest.raises(PeerFailed):
                await client.request(url, "POST", "/x", [], b"{}")
            with pytest.raises(PeerUnreachable):
                await client.request(f"http://127.0.0.1:{free_port()}", "POST", "/x", [], b"")
        finally:
            await client.aclose()
            server.close()

    asyncio.run(scenario())
