"""The blocking client's strict deadline: every socket wait is cut at the exchange's deadline.

httpx's timeouts bound each phase (connect, each read, each write), so a read that starts just
before the deadline could block for a whole read timeout more. The async client bounds the whole
exchange with a cancel scope; a blocking call cannot be cancelled, so instead the sync client's
connections go through ``DeadlineBackend``: its streams clamp the timeout of every read, write,
connect and TLS handshake to the time left before the deadline of the exchange running on the
calling thread (set with ``bounded_by``). A wait that would reach past the deadline ends at it
with the phase's timeout error, which the client reports as a TransportError.

Why clamping and not a watchdog thread that closes the socket: the request runs on the caller's
thread, so the deadline can be handed to each socket wait directly; no thread, no race between
the watchdog and a connection going back to the pool, and the fast path costs a thread-local
read per socket operation.
"""

from __future__ import annotations

import ssl
import threading
import time
import typing
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import httpcore
import httpx

_local = threading.local()  # .deadline: the monotonic deadline of this thread's exchange, or None


@contextmanager
def bounded_by(deadline: float | None) -> Iterator[None]:
    """Run the block's socket operations (on this thread) under ``deadline`` (monotonic)."""
    outer = getattr(_local, "deadline", None)
    _local.deadline = deadline
    try:
        yield
    finally:
        _local.deadline = outer


def _clamp(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to the time left; raises ``expired`` once the deadline has passed (a
    zero socket timeout would mean non-blocking, which fails as an error, not a timeout)."""
    deadline: float | None = getattr(_local, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the exchange's deadline passed")
    return left if timeout is None else min(timeout, left)


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose waits end at the current exchange's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        tls = self._inner.start_tls(
            ssl_context, server_hostname, _clamp(timeout, httpcore.ConnectTimeout)
        )
        return DeadlineStream(tls)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's blocking socket backend, with streams that honour the exchange's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, _clamp(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return DeadlineStream(stream)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_unix_socket(
            path, _clamp(timeout, httpcore.ConnectTimeout), socket_options
        )
        return DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport(*, http1: bool, http2: bool) -> httpx.BaseTransport:
    """httpx's default transport (same limits and TLS settings) over ``DeadlineBackend``.

    httpx takes no network backend, so its transport's connection pool is swapped for an equal
    one that has it; should a future httpx keep its pool elsewhere, the plain transport is used
    (the client still checks the deadline between body chunks, as before)."""
    transport = httpx.HTTPTransport(http1=http1, http2=http2)
    if not isinstance(getattr(transport, "_pool", None), httpcore.ConnectionPool):
        return transport
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=http1,
        http2=http2,
        network_backend=DeadlineBackend(),
    )
    return transport
