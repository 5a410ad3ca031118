"""The asyncio/trio client: ``AsyncClient`` and the requesters and handles it hands out.

The twin of _sync.py (same methods, awaited; names prefixed ``Async``): _core.py decides what to
send and how to read the answer, this module owns an ``httpx.AsyncClient``, the retry loop and the
deadline (enforced with anyio, so it holds for the whole exchange).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

import anyio
import httpx

from perdure.client import _core
from perdure.client._core import (
    USE_CLIENT_DEFAULT,
    Config,
    Exchange,
    Reply,
    SendResult,
    SendStatus,
    Target,
    Timeout,
)
from perdure.client._serde import JSON_CONTENT_TYPE, NO_BODY, encode_input
from perdure.client._sync import RETRYABLE_FAILURES, _timed_out, _timeouts, _transport_error

In = TypeVar("In")  # the handler's argument type
Out = TypeVar("Out")  # the handler's result type
T = TypeVar("T")


class AsyncClient:
    """Calls handlers through a Restate-compatible ingress, awaited; the twin of ``Client``.

    ``timeout`` bounds each call and send (seconds or timedelta, None for no limit); attach and
    output wait without a limit unless given one. ``retries`` is how often a connection failure of
    an idempotent request (one with an idempotency key, attach/output, a workflow run send) is
    retried, with exponential backoff from 100 ms. ``http2`` speaks HTTP/2 (h2c on http://).
    ``token`` is sent as ``Authorization: Bearer <token>`` to an ingress that needs one
    (default: ``$PERDURE_INGRESS_TOKEN``, if set).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = _core.DEFAULT_TIMEOUT,
        http2: bool = False,
        retries: int = _core.DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must not be negative")
        self._config = Config(_core.lower_keys(headers), _core.seconds(timeout), retries)
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            http1=not http2,
            http2=http2,
            transport=transport,
            follow_redirects=False,
            headers=_core.auth_headers(token),
        )

    # -- lifecycle ------------------------------------------------------------------------------

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- targets --------------------------------------------------------------------------------

    @overload
    def service(self, service: str, handler: str, *, output: type[T]) -> AsyncRequester[Any, T]: ...
    @overload
    def service(self, service: str, handler: str) -> AsyncRequester[Any, Any]: ...
    @overload
    def service(self, service: Callable[[Any, In], Awaitable[Out]]) -> AsyncRequester[In, Out]: ...
    @overload
    def service(self, service: Callable[..., Awaitable[Out]]) -> AsyncRequester[Any, Out]: ...
    def service(
        self, service: str | Callable[..., Any], handler: str | None = None, *, output: Any = Any
    ) -> AsyncRequester[Any, Any]:
        """Request-response calls and sends to a service handler."""
        return AsyncRequester(self, _core.resolve_target("service", service, None, handler, output))

    @overload
    def object(
        self, obj: str, key: str, handler: str, *, output: type[T]
    ) -> AsyncRequester[Any, T]: ...
    @overload
    def object(self, obj: str, key: str, handler: str) -> AsyncRequester[Any, Any]: ...
    @overload
    def object(
        self, obj: Callable[[Any, In], Awaitable[Out]], key: str
    ) -> AsyncRequester[In, Out]: ...
    @overload
    def object(self, obj: Callable[..., Awaitable[Out]], key: str) -> AsyncRequester[Any, Out]: ...
    def object(
        self,
        obj: str | Callable[..., Any],
        key: str,
        handler: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncRequester[Any, Any]:
        """A virtual object's handler for ``key`` (also a workflow's shared handlers)."""
        return AsyncRequester(self, _core.resolve_target("object", obj, key, handler, output))

    @overload
    def workflow(
        self, workflow: str, key: str, handler: str, *, output: type[T]
    ) -> AsyncRequester[Any, T]: ...
    @overload
    def workflow(self, workflow: str, key: str, handler: str) -> AsyncRequester[Any, Any]: ...
    @overload
    def workflow(
        self, workflow: Callable[[Any, In], Awaitable[Out]], key: str
    ) -> AsyncRequester[In, Out]: ...
    @overload
    def workflow(
        self, workflow: Callable[..., Awaitable[Out]], key: str
    ) -> AsyncRequester[Any, Out]: ...
    def workflow(
        self,
        workflow: str | Callable[..., Any],
        key: str,
        handler: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncRequester[Any, Any]:
        """A workflow's run handler for the workflow id ``key``."""
        return AsyncRequester(
            self, _core.resolve_target("workflow", workflow, key, handler, output)
        )

    @overload
    def service_send(
        self, service: str, handler: str, *, output: type[T]
    ) -> AsyncSendRequester[Any, T]: ...
    @overload
    def service_send(self, service: str, handler: str) -> AsyncSendRequester[Any, Any]: ...
    @overload
    def service_send(
        self, service: Callable[[Any, In], Awaitable[Out]]
    ) -> AsyncSendRequester[In, Out]: ...
    @overload
    def service_send(
        self, service: Callable[..., Awaitable[Out]]
    ) -> AsyncSendRequester[Any, Out]: ...
    def service_send(
        self, service: str | Callable[..., Any], handler: str | None = None, *, output: Any = Any
    ) -> AsyncSendRequester[Any, Any]:
        """One-way (optionally delayed) sends to a service handler."""
        return AsyncSendRequester(
            self, _core.resolve_target("service", service, None, handler, output)
        )

    @overload
    def object_send(
        self, obj: str, key: str, handler: str, *, output: type[T]
    ) -> AsyncSendRequester[Any, T]: ...
    @overload
    def object_send(self, obj: str, key: str, handler: str) -> AsyncSendRequester[Any, Any]: ...
    @overload
    def object_send(
        self, obj: Callable[[Any, In], Awaitable[Out]], key: str
    ) -> AsyncSendRequester[In, Out]: ...
    @overload
    def object_send(
        self, obj: Callable[..., Awaitable[Out]], key: str
    ) -> AsyncSendRequester[Any, Out]: ...
    def object_send(
        self,
        obj: str | Callable[..., Any],
        key: str,
        handler: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncSendRequester[Any, Any]:
        """One-way sends to a virtual object's (or a workflow's shared) handler."""
        return AsyncSendRequester(self, _core.resolve_target("object", obj, key, handler, output))

    @overload
    def workflow_send(
        self, workflow: str, key: str, handler: str, *, output: type[T]
    ) -> AsyncSendRequester[Any, T]: ...
    @overload
    def workflow_send(
        self, workflow: str, key: str, handler: str
    ) -> AsyncSendRequester[Any, Any]: ...
    @overload
    def workflow_send(
        self, workflow: Callable[[Any, In], Awaitable[Out]], key: str
    ) -> AsyncSendRequester[In, Out]: ...
    @overload
    def workflow_send(
        self, workflow: Callable[..., Awaitable[Out]], key: str
    ) -> AsyncSendRequester[Any, Out]: ...
    def workflow_send(
        self,
        workflow: str | Callable[..., Any],
        key: str,
        handler: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncSendRequester[Any, Any]:
        """Start a workflow's run; sending it again for the same key is PreviouslyAccepted."""
        return AsyncSendRequester(
            self, _core.resolve_target("workflow", workflow, key, handler, output)
        )

    # -- handles --------------------------------------------------------------------------------

    @overload
    def invocation_by_id(
        self, invocation_id: str, *, output: type[T]
    ) -> AsyncInvocationHandle[T]: ...
    @overload
    def invocation_by_id(self, invocation_id: str) -> AsyncInvocationHandle[Any]: ...
    def invocation_by_id(
        self, invocation_id: str, *, output: Any = Any
    ) -> AsyncInvocationHandle[Any]:
        """Attach to or read the output of any invocation by its ``inv_1…`` id."""
        return AsyncInvocationHandle(self, _core.invocation_path(invocation_id), output)

    @overload
    def service_invocation_by_idempotency_key(
        self, service: str, handler: str, idempotency_key: str, *, output: type[T]
    ) -> AsyncInvocationHandle[T]: ...
    @overload
    def service_invocation_by_idempotency_key(
        self, service: str, handler: str, idempotency_key: str
    ) -> AsyncInvocationHandle[Any]: ...
    @overload
    def service_invocation_by_idempotency_key(
        self, service: Callable[..., Awaitable[Out]], idempotency_key: str, /
    ) -> AsyncInvocationHandle[Out]: ...
    @overload
    def service_invocation_by_idempotency_key(
        self, service: Callable[..., Awaitable[Out]], *, idempotency_key: str
    ) -> AsyncInvocationHandle[Out]: ...
    def service_invocation_by_idempotency_key(
        self,
        service: str | Callable[..., Any],
        handler: str | None = None,
        idempotency_key: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncInvocationHandle[Any]:
        """The invocation a service handler got with ``idempotency_key``: by name
        ``(service, handler, key)`` or by typed reference ``(greet, key)``."""
        locator, output_type = _core.handle_target(
            "service", service, None, handler, idempotency_key, output=output
        )
        return AsyncInvocationHandle(self, locator, output_type)

    @overload
    def object_invocation_by_idempotency_key(
        self, obj: str, key: str, handler: str, idempotency_key: str, *, output: type[T]
    ) -> AsyncInvocationHandle[T]: ...
    @overload
    def object_invocation_by_idempotency_key(
        self, obj: str, key: str, handler: str, idempotency_key: str
    ) -> AsyncInvocationHandle[Any]: ...
    @overload
    def object_invocation_by_idempotency_key(
        self, obj: Callable[..., Awaitable[Out]], key: str, idempotency_key: str, /
    ) -> AsyncInvocationHandle[Out]: ...
    @overload
    def object_invocation_by_idempotency_key(
        self, obj: Callable[..., Awaitable[Out]], key: str, *, idempotency_key: str
    ) -> AsyncInvocationHandle[Out]: ...
    def object_invocation_by_idempotency_key(
        self,
        obj: str | Callable[..., Any],
        key: str,
        handler: str | None = None,
        idempotency_key: str | None = None,
        *,
        output: Any = Any,
    ) -> AsyncInvocationHandle[Any]:
        """The invocation an object's (or a workflow's shared) handler got for ``key`` with
        ``idempotency_key``: by name ``(obj, key, handler, ikey)`` or ``(add, key, ikey)``."""
        locator, output_type = _core.handle_target(
            "object", obj, key, handler, idempotency_key, output=output
        )
        return AsyncInvocationHandle(self, locator, output_type)

    @overload
    def workflow_handle(
        self, workflow: str, key: str, *, output: type[T]
    ) -> AsyncInvocationHandle[T]: ...
    @overload
    def workflow_handle(self, workflow: str, key: str) -> AsyncInvocationHandle[Any]: ...
    @overload
    def workflow_handle(
        self, workflow: Callable[..., Awaitable[Out]], key: str
    ) -> AsyncInvocationHandle[Out]: ...
    def workflow_handle(
        self, workflow: str | Callable[..., Any], key: str, *, output: Any = Any
    ) -> AsyncInvocationHandle[Any]:
        """The run of workflow ``key`` (by name, or by the workflow's run handler): attach
        waits for it, output raises NotReadyError before it finishes."""
        target = _core.workflow_handle_target(workflow, key, output)
        return AsyncInvocationHandle(self, _core.workflow_path(target), target.output_type)

    # -- awakeables -----------------------------------------------------------------------------

    async def resolve_awakeable(
        self, awakeable_id: str, value: Any = None, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Complete an awakeable with ``value`` (JSON unless bytes)."""
        content, content_type = encode_input(value)
        exchange = self._config.awakeable(
            awakeable_id, content or b"", content_type or JSON_CONTENT_TYPE, "resolve", headers
        )
        _core.raise_for_status(await self._perform(exchange))

    async def reject_awakeable(
        self, awakeable_id: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        """Fail an awakeable: the awaiting handler gets a terminal error with ``message``."""
        exchange = self._config.awakeable(
            awakeable_id, message.encode(), "text/plain", "reject", headers
        )
        _core.raise_for_status(await self._perform(exchange))

    # -- the driver -----------------------------------------------------------------------------

    async def _perform(self, exchange: Exchange) -> Reply:
        deadline = None if exchange.timeout is None else time.monotonic() + exchange.timeout
        pauses = _core.backoff_delays(self._config.retries if exchange.retryable else 0)
        while True:
            try:
                return await self._attempt(exchange, deadline)
            except httpx.TimeoutException as exc:
                if not isinstance(exc, httpx.ConnectTimeout):
                    raise _timed_out(exchange, exc) from exc
                failure: httpx.HTTPError = exc
            except RETRYABLE_FAILURES as exc:
                failure = exc
            except httpx.HTTPError as exc:
                raise _transport_error(exchange, exc) from exc
            pause = next(pauses, None)
            if pause is None or (deadline is not None and time.monotonic() + pause >= deadline):
                raise _transport_error(exchange, failure) from failure
            await anyio.sleep(pause)

    async def _attempt(self, exchange: Exchange, deadline: float | None) -> Reply:
        if deadline is None:
            return await self._request(exchange, deadline)
        try:
            with anyio.fail_after(max(deadline - time.monotonic(), 0.001)):
                return await self._request(exchange, deadline)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no complete answer within {exchange.timeout} s") from exc

    async def _request(self, exchange: Exchange, deadline: float | None) -> Reply:
        response = await self._http.request(
            exchange.method,
            exchange.path,
            content=exchange.content,
            params=exchange.params,
            headers=exchange.headers,
            timeout=_timeouts(exchange, deadline),
        )
        return Reply(
            response.status_code,
            {k.lower(): v for k, v in response.headers.items()},
            response.content,
        )


# ---------------------------------------------------------------------------------------------
# requesters and handles


class AsyncSendRequester(Generic[In, Out]):
    """One-way sends to one handler; each send returns a SendHandle."""

    def __init__(self, client: AsyncClient, target: Target) -> None:
        self._client = client
        self._target = target

    async def send(
        self,
        value: In = NO_BODY,
        *,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> AsyncSendHandle[Out]:
        """Enqueue an invocation and return at once; ``delay`` postpones its start."""
        exchange = self._client._config.send(
            self._target,
            value,
            delay=delay,
            idempotency_key=idempotency_key,
            headers=headers,
            timeout=timeout,
        )
        result = _core.read_send(await self._client._perform(exchange))
        return AsyncSendHandle(self._client, self._target.output_type, result)


class AsyncRequester(AsyncSendRequester[In, Out]):
    """Request-response calls (and sends) to one handler."""

    async def request(
        self,
        value: In = NO_BODY,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = USE_CLIENT_DEFAULT,
    ) -> Out:
        """Invoke the handler and wait for its result."""
        exchange = self._client._config.call(
            self._target, value, idempotency_key=idempotency_key, headers=headers, timeout=timeout
        )
        result: Out = _core.read_output(
            await self._client._perform(exchange), self._target.output_type
        )
        return result


class AsyncInvocationHandle(Generic[Out]):
    """An existing invocation: ``attach`` waits for its result, ``output`` reads it now."""

    def __init__(self, client: AsyncClient, locator: _core.Locator, output_type: Any) -> None:
        self._client = client
        self._locator = locator
        self._output_type = output_type

    async def attach(
        self, *, headers: Mapping[str, str] | None = None, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Out:
        """Wait for the result (by default without a time limit)."""
        return await self._lookup("attach", headers, timeout)

    async def output(
        self, *, headers: Mapping[str, str] | None = None, timeout: Timeout = USE_CLIENT_DEFAULT
    ) -> Out:
        """The result now; NotReadyError while the invocation runs."""
        return await self._lookup("output", headers, timeout)

    async def _lookup(self, what: Any, headers: Mapping[str, str] | None, timeout: Timeout) -> Out:
        exchange = self._client._config.lookup(self._locator, what, headers, timeout)
        result: Out = _core.read_output(await self._client._perform(exchange), self._output_type)
        return result


class AsyncSendHandle(AsyncInvocationHandle[Out]):
    """What a send returns: the invocation's id, whether it is new, and when it will start."""

    def __init__(self, client: AsyncClient, output_type: Any, sent: SendResult) -> None:
        super().__init__(client, _core.invocation_path(sent.invocation_id), output_type)
        self.id = sent.invocation_id
        self.status: SendStatus = sent.status
        """"Accepted", or "PreviouslyAccepted" when the idempotency key or workflow id was known."""
        self.execution_time: datetime | None = sent.execution_time
        """When a delayed invocation starts (aware UTC); None when it was not delayed."""

    def __repr__(self) -> str:
        return f"AsyncSendHandle(id={self.id!r}, status={self.status!r})"
