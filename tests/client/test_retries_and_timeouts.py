"""Connection failures are retried only for requests that are safe to repeat (an idempotency key,
attach/output, a workflow run send), with exponential backoff from 100 ms for about 3 s; timeouts
bound the whole exchange and surface as TransportError."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from perdure.client import AsyncClient, Client, InvocationError, TransportError
from tests.client.conftest import Runner
from tests.client.wire import ID, Recorder, error, ok, sent

REFUSED = httpx.ConnectError("connection refused")

RETRIED = [
    ("call with idempotency key", lambda c: c.service("S", "h").request(1, idempotency_key="k")),
    ("send with idempotency key", lambda c: c.service_send("S", "h").send(1, idempotency_key="k")),
    ("workflow run send", lambda c: c.workflow_send("W", "id", "run").send(1)),
    ("attach", lambda c: c.invocation_by_id(ID).attach()),
    ("output", lambda c: c.workflow_handle("W", "id").output()),
    (
        "idempotent attach",
        lambda c: c.service_invocation_by_idempotency_key("S", "h", "k").attach(),
    ),
]
NOT_RETRIED = [
    ("call", lambda c: c.service("S", "h").request(1)),
    ("object call", lambda c: c.object("O", "k", "h").request(1)),
    ("workflow run call", lambda c: c.workflow("W", "id", "run").request(1)),
    ("send", lambda c: c.service_send("S", "h").send(1)),
    ("object send", lambda c: c.object_send("O", "k", "h").send(1)),
    ("resolve awakeable", lambda c: c.resolve_awakeable("sign_1x", 1)),
]


def _answer(request: httpx.Request) -> httpx.Response:
    return sent() if request.url.path.endswith("/send") else ok("done")


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("perdure.client._core.FIRST_RETRY_DELAY", 0.001)


@pytest.mark.usefixtures("quick_backoff")
@pytest.mark.parametrize("op", [r[1] for r in RETRIED], ids=[r[0] for r in RETRIED])
@pytest.mark.parametrize(
    "failure",
    [REFUSED, httpx.RemoteProtocolError("server disconnected"), httpx.ReadError("reset")],
    ids=["refused", "disconnected", "reset"],
)
def test_idempotent_requests_are_retried(run: Runner, op: Any, failure: Exception) -> None:
    recorder = Recorder([failure, failure, _answer])
    run(recorder, op)
    assert len(recorder.requests) == 3


@pytest.mark.parametrize("op", [r[1] for r in NOT_RETRIED], ids=[r[0] for r in NOT_RETRIED])
def test_other_requests_are_not_retried(run: Runner, op: Any) -> None:
    recorder = Recorder([REFUSED, _answer])
    with pytest.raises(TransportError, match="refused"):
        run(recorder, op)
    assert len(recorder.requests) == 1


def test_retries_give_up_after_about_three_seconds(run: Runner) -> None:
    recorder = Recorder([REFUSED])
    started = time.monotonic()
    with pytest.raises(TransportError):
        run(recorder, lambda c: c.invocation_by_id(ID).output())
    elapsed = time.monotonic() - started
    assert len(recorder.requests) == 6  # the first attempt and 5 retries
    assert 3.0 <= elapsed < 10


def test_retries_can_be_turned_off(run: Runner) -> None:
    recorder = Recorder([REFUSED, _answer])
    with pytest.raises(TransportError):
        run(recorder, lambda c: c.invocation_by_id(ID).attach(), retries=0)
    assert len(recorder.requests) == 1


def test_http_errors_are_not_retried(run: Runner) -> None:
    recorder = Recorder([error(503, {"code": 503, "message": "x", "source": "ingress"}), _answer])
    with pytest.raises(InvocationError):
        run(recorder, lambda c: c.invocation_by_id(ID).attach())
    assert len(recorder.requests) == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="retries"):
        Client("http://x", retries=-1)
    with pytest.raises(ValueError, match="timeout"):
        Client("http://x", timeout=0)


# -- real sockets -------------------------------------------------------------------------------


class _SlowHandler(BaseHTTPRequestHandler):
    """Answers ``"late"`` after as many seconds as the ``x-sleep`` header says."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self._answer()

    def _answer(self) -> None:
        time.sleep(float(self.headers.get("x-sleep") or 0))
        drip = float(self.headers.get("x-drip") or 0)
        body = b'"late"' if not drip else b'"' + b"." * 30 + b'"'
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            if not drip:
                self.wfile.write(body)
                return
            for byte in body:  # a byte at a time: no single read waits long
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(drip)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _run_real(mode: str, url: str, op: Any, **kwargs: Any) -> Any:
    import asyncio

    if mode == "sync":
        with Client(url, **kwargs) as client:
            return op(client)

    async def main() -> Any:
        async with AsyncClient(url, **kwargs) as client:
            return await op(client)

    return asyncio.run(main())


def test_call_timeout_from_the_client(run: Runner, slow_server: str) -> None:
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        _run_real(
            run.mode,
            slow_server,
            lambda c: c.service("S", "h").request(1, headers={"x-sleep": "3"}),
            timeout=0.3,
        )
    assert time.monotonic() - started < 2.5


def test_call_timeout_per_call_overrides(run: Runner, slow_server: str) -> None:
    out = _run_real(
        run.mode,
        slow_server,
        lambda c: c.service("S", "h").request(1, headers={"x-sleep": "0.6"}, timeout=5),
        timeout=0.2,
    )
    assert out == "late"
    with pytest.raises(TransportError):
        _run_real(
            run.mode,
            slow_server,
            lambda c: c.service("S", "h").request(
                1, headers={"x-sleep": "3"}, timeout=timedelta(seconds=0.3)
            ),
        )


def test_timeout_bounds_the_whole_exchange_not_each_read(run: Runner, slow_server: str) -> None:
    """A body that trickles in (a byte per 0.1 s, 3 s in all) still times out at 0.5 s."""
    started = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        _run_real(
            run.mode,
            slow_server,
            lambda c: c.service("S", "h").request(1, headers={"x-drip": "0.1"}),
            timeout=0.5,
        )
    assert time.monotonic() - started < 1.5
    out = _run_real(
        run.mode,
        slow_server,
        lambda c: c.invocation_by_id(ID).output(headers={"x-drip": "0.01"}, timeout=5),
    )
    assert out == "." * 30


def test_attach_waits_past_the_client_timeout(run: Runner, slow_server: str) -> None:
    out = _run_real(
        run.mode,
        slow_server,
        lambda c: c.invocation_by_id(ID).attach(headers={"x-sleep": "0.8"}),
        timeout=0.2,
    )
    assert out == "late"
    with pytest.raises(TransportError, match="timed out"):
        _run_real(
            run.mode,
            slow_server,
            lambda c: c.invocation_by_id(ID).attach(headers={"x-sleep": "3"}, timeout=0.3),
        )


def test_refused_connection_is_a_transport_error(run: Runner) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens: bound but not listening
        with pytest.raises(TransportError, match="no answer"):
            _run_real(run.mode, f"http://127.0.0.1:{port}", lambda c: c.service("S", "h").request())
