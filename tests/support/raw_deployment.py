"""A fake deployment on a loopback socket that answers every connection with one canned
behaviour: raw bytes, bytes dripped slowly, silence, or a flood. For tests of how the server
copes with deployments that misbehave below the level any SDK would.

    with raw_deployment(answer=b"garbage") as url:
        admin.post("/deployments", json={"uri": url})
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
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
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)  # so that the acceptor notices the stop
    port = listener.getsockname()[1]
    stopping = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
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
            except OSError:
                pass

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stopping.set()
        acceptor.join(5)
        listener.close()
