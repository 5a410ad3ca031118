"""``perdure.serve`` keeps a connection alive when the server sends request data on a stream
whose response already ended.

That is legal HTTP/2 (the stream is only half-closed), and it happens whenever the SDK ends an
attempt while the server is still writing to it. hypercorn drops a stream as soon as its response
ends and then failed on the late DATA frame, which closed the connection and every other
invocation on it."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import h2.config
import h2.connection
import h2.events

from tests.support.processes import Child, free_port, wait_tcp

REPO = Path(__file__).resolve().parents[2]
INVOKE = "/invoke/LiveEcho/echo_text"


def _events_until(
    sock: socket.socket, conn: h2.connection.H2Connection, done: type, stream: int
) -> tuple[list[h2.events.Event], bool]:
    """Reads events until ``done`` arrives on ``stream`` (True) or the connection ends (False)."""
    seen: list[h2.events.Event] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        data = sock.recv(65536)
        if not data:
            return seen, False
        for event in conn.receive_data(data):
            seen.append(event)
            if isinstance(event, done) and getattr(event, "stream_id", None) == stream:
                sock.sendall(conn.data_to_send())
                return seen, True
        sock.sendall(conn.data_to_send())
    return seen, False


def test_late_data_on_an_ended_stream_leaves_the_connection_serving(tmp_path: Path) -> None:
    port = free_port()
    child = Child(
        "deployment",
        [sys.executable, "-m", "tests.server.liveness_services", str(port)],
        tmp_path / "deployment.log",
        cwd=REPO,
    )
    try:
        wait_tcp(port, "deployment", child)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            headers = [
                (":method", "POST"),
                (":scheme", "http"),
                (":authority", f"127.0.0.1:{port}"),
                (":path", INVOKE),
                ("content-type", "application/vnd.restate.invocation.v6"),
            ]
            conn.send_headers(1, headers)
            conn.send_data(1, b"\xff" * 64)  # not a message: the SDK answers and ends at once
            sock.sendall(conn.data_to_send())
            _, ended = _events_until(sock, conn, h2.events.StreamEnded, 1)
            assert ended, "the deployment did not end its response to a garbage body"

            conn.send_data(1, b"\x00" * 16)  # late: the response has already ended
            health = [(":method", "GET"), *headers[1:3], (":path", "/health")]
            conn.send_headers(3, health, end_stream=True)
            sock.sendall(conn.data_to_send())
            events, answered = _events_until(sock, conn, h2.events.StreamEnded, 3)
            assert answered, f"the connection stopped serving after a late DATA frame: {events}"
            assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events)
    finally:
        child.stop()
    assert "KeyError" not in child.log_path.read_text()
