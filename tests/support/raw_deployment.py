"""A fake deployment on a loopback socket that answers every connection with one canned
behaviour: raw bytes, bytes dripped slowly, silence, or a flood. For tests of how the server
copes with deployments that misbehave below the level any SDK would.

    with raw_deployment(answer=b"garbage") as url:
        admin.post("/deployments", json={"uri": url})

Under it, ``raw_server`` runs any hand-written behaviour per connection (e.g. a fake ingress that
stalls mid-answer, for the client's tests).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


def http11_answer(body: bytes, content_type: str, *, status: int = 200) -> bytes:
    head = (
        f"HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    return head + body


@contextmanager
def raw_deployment(
    *,
    answer: bytes = b"",
    drip_interval: float | None = None,
    flood_bytes: int = 0,
    hang: bool = False,
) -> Iterator[str]:
    """Serve on a free loopback port; yields ``http://127.0.0.1:port``.

    Each connection reads the request, then: sends ``answer`` (one byte every ``drip_interval``
    seconds if set), then ``flood_bytes`` spaces, then closes; with ``hang`` it sends nothing and
    keeps the connection open until the deployment stops.
    """

    def serve(conn: socket.socket, stopping: threading.Event) -> None:
        conn.settimeout(5.0)
        conn.recv(65536)
        if hang:
            stopping.wait()
            return
        if drip_interval is None:
            conn.sendall(answer)
        else:
            for byte in answer:
                if stopping.wait(drip_interval):
                    return
                conn.sendall(bytes([byte]))
        chunk = b" " * 65536
        sent = 0
        while sent < flood_bytes and not stopping.is_set():
            conn.sendall(chunk)
            sent += len(chunk)
        time.sleep(0.2)  # let the peer read before the close

    with raw_server(serve) as url:
        yield url


@contextmanager
def raw_server(
    serve: Callable[[socket.socket, threading.Event], None], *, join: bool = False
) -> Iterator[str]:
    """Serve on a free loopback port; yields ``http://127.0.0.1:port``.

    Each connection is handed to ``serve(conn, stopping)`` in a thread of its own, closed when
    it returns (an ``OSError`` in it just ends the connection). At the end ``stopping`` is set:
    a handler that waits must wait on it; with ``join`` each handler is then waited for (10 s
    at most), so that none outlives the test.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # so that the acceptor notices the stop
    port = listener.getsockname()[1]
    stopping = threading.Event()
    handlers: list[threading.Thread] = []

    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            serve(conn, stopping)

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            handler = threading.Thread(target=handle, args=(conn,), daemon=True)
            handler.start()
            handlers.append(handler)

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        acceptor.join(5)
        listener.close()
        if join:
            for handler in handlers:
                handler.join(10)
