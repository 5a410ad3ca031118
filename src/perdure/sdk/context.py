"""The handler context: everything a handler does durably goes through ``ctx``.

Class per handler kind, so that what a handler may do is visible in its signature:

Context                      services: calls, sends, steps, sleeps, awakeables, attach, cancel
└── ObjectSharedContext      + key(), get(), state_keys()            (shared object handlers)
    ├── ObjectContext        + set(), clear(), clear_all()           (exclusive object handlers)
    │   └── WorkflowContext  + promise()                             (a workflow's run handler)
    └── WorkflowSharedContext + promise()                            (a workflow's other handlers)
"""

from __future__ import annotations

import functools
import logging
import random as _random
import typing
import uuid as _uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from perdure.protocol.manifest import HandlerType, ServiceType
from perdure.protocol.messages import InputCommand
from perdure.sdk.futures import (
    CallFuture,
    DurableFuture,
    LeafFuture,
    raise_failure,
    value_decoder,
    void_decoder,
)
from perdure.sdk.invocation import Invocation, PendingRun, RunRetry
from perdure.sdk.refs import NO_INPUT, ref_of
from perdure.sdk.serde import JsonSerde, Serde, serde_for
from perdure.sdk.vm import Failure, Result, Target

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 - the argument type of a handler reference
O = TypeVar("O")  # noqa: E741 - its result type

OMITTED: Any = type("Omitted", (), {"__repr__": lambda self: "OMITTED"})()
"""Marks an argument that was not given (``request()`` without input sends no body)."""


def _encode(value: Any, serde: Serde | None = None) -> bytes:
    """Serialize by runtime type: bytes stay raw, everything else is JSON."""
    if value is OMITTED:
        return b""
    if serde is not None:
        return serde.serialize(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return JsonSerde().serialize(value)


def _serde_of(output: Any) -> Serde:
    return serde_for(Any if output is OMITTED else output)


@dataclass(frozen=True, slots=True)
class Request:
    """The invocation as the handler sees it."""

    id: str
    """The ``inv_1…`` invocation id."""
    headers: Mapping[str, str]
    """Request headers, lower-case names."""
    attempt: int
    """Failed attempts since the journal last grew (0 on a fresh start)."""
    body: bytes
    idempotency_key: str | None
    """The idempotency key, if the caller's headers carry it."""


class Caller(Generic[I, O]):
    """A request-response target; ``request(arg)`` issues the call at once."""

    def __init__(
        self,
        ctx: Context,
        service: str,
        handler: str,
        key: str,
        *,
        output: Serde,
        input_serde: Any,
    ) -> None:
        self._ctx, self._service, self._handler, self._key = ctx, service, handler, key
        self._output = output
        self._input_serde = input_serde

    def request(
        self,
        arg: I = OMITTED,
        *,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> CallFuture[O]:
        inv = self._ctx._inv
        id_nid, result_nid = inv.vm.sys_call(
            self._service,
            self._handler,
            _encode(arg, self._input_serde),
            key=self._key,
            headers=headers,
            idempotency_key=idempotency_key,
        )
        inv.child_calls.append((id_nid, result_nid))
        inv.flush()
        return CallFuture(inv, id_nid, result_nid, value_decoder(self._output.deserialize))


class SendHandle:
    """A one-way call already issued: its invocation id, and a way to cancel it."""

    def __init__(self, ctx: Context, future: LeafFuture[str]) -> None:
        self._ctx = ctx
        self._future = future

    async def invocation_id(self) -> str:
        return await self._future

    async def cancel(self) -> None:
        self._ctx.cancel_invocation(await self.invocation_id())


class Sender(Generic[I]):
    """A one-way target; ``send(arg)`` issues the call at once and returns a handle."""

    def __init__(self, ctx: Context, service: str, handler: str, key: str, input_serde: Any):
        self._ctx, self._service, self._handler, self._key = ctx, service, handler, key
        self._input_serde = input_serde

    def send(
        self,
        arg: I = OMITTED,
        *,
        delay: timedelta | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> SendHandle:
        inv = self._ctx._inv
        invoke_time = 0
        if delay is not None and delay > timedelta(0):
            invoke_time = int(inv.clock() + delay.total_seconds() * 1000)
        nid = inv.vm.sys_send(
            self._service,
            self._handler,
            _encode(arg, self._input_serde),
            key=self._key,
            headers=headers,
            idempotency_key=idempotency_key,
            invoke_time_ms=invoke_time,
        )
        inv.flush()
        return SendHandle(self._ctx, LeafFuture(inv, nid, lambda r: str(r.value)))


class _ReplayAwareLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Drops records while the handler replays, so each line is logged once."""

    def __init__(self, inv: Invocation) -> None:
        super().__init__(logging.getLogger(f"perdure.handler.{inv.handler.service_name}"), {})
        self._inv = inv

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self._inv.vm.replaying:
            super().log(level, msg, *args, **kwargs)


def _call_target(
    kind: ServiceType, target: Any, key: str | None, handler: str | None, output: Any
) -> tuple[str, str, Serde, Serde | None]:
    """(service, handler, result serde, argument serde) of a reference or a name."""
    if callable(target):
        ref = ref_of(target)
        if ref.service_type is not kind:
            raise TypeError(
                f"{ref.service}/{ref.handler} is a {ref.service_type.value} handler, "
                f"not a {kind.value} one"
            )
        out = _serde_of(ref.output_type if output is OMITTED else output)
        arg_serde = None if ref.input_type in (NO_INPUT, Any) else serde_for(ref.input_type)
        return ref.service, ref.handler, out, arg_serde
    if not isinstance(target, str) or not isinstance(handler, str):
        raise TypeError("address a handler by reference, or by service name and handler name")
    return target, handler, _serde_of(output), None


def _return_type(fn: Callable[..., Any]) -> Any:
    """The return type hint of a step's function (Any when it has none). Resolving hints costs
    tens of microseconds (string annotations are evaluated), so it is done once per function."""
    try:
        return _cached_return_type(fn)
    except TypeError:  # unhashable callable
        return _resolve_return_type(fn)


def _resolve_return_type(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return", Any)
    except Exception:  # unresolvable hints (lambdas, builtins): decode plain JSON
        return Any


_cached_return_type = functools.lru_cache(maxsize=512)(_resolve_return_type)


class Context:
    """The context of a service handler."""

    def __init__(self, inv: Invocation) -> None:
        self._inv = inv
        # Both made on first use: most handlers use neither, and each costs microseconds.
        self._random: _random.Random | None = None
        self._logger: logging.LoggerAdapter | None = None  # type: ignore[type-arg]
        self._request: Request | None = None
        self._input: InputCommand | None = None

    @property
    def logger(self) -> logging.LoggerAdapter:  # type: ignore[type-arg]
        """A logger that stays quiet while the handler replays."""
        if self._logger is None:
            self._logger = _ReplayAwareLogger(self._inv)
        return self._logger

    # -- the invocation ---------------------------------------------------------------------

    def request(self) -> Request:
        if self._request is None:
            if self._input is None:
                raise RuntimeError("the request is known once the handler runs")
            info = self._inv.vm.start_info()
            lower = {h.key.lower(): h.value for h in self._input.headers}
            self._request = Request(
                id=info.invocation_id,
                headers=lower,
                attempt=info.retry_count,
                body=self._input.value.content,
                idempotency_key=lower.get("idempotency-key"),
            )
        return self._request

    def _set_input(self, command: InputCommand) -> None:
        """The invocation's Input; ``request()`` is made from it when first asked for."""
        self._input = command

    def random(self) -> _random.Random:
        """A random generator seeded by the invocation: the same draws on every replay."""
        if self._random is None:
            self._random = _random.Random(self._inv.vm.start_info().random_seed)
        return self._random

    def uuid(self) -> _uuid.UUID:
        """A version-4 UUID drawn from ``random()``: stable across replays."""
        return _uuid.UUID(int=self.random().getrandbits(128), version=4)

    # -- steps and timers -------------------------------------------------------------------

    def run(
        self,
        name: str,
        fn: Callable[..., Any],
        *args: Any,
        type_hint: Any = OMITTED,
        serde: Serde | None = None,
        max_attempts: int | None = None,
        max_duration: timedelta | None = None,
        initial_retry_interval: timedelta | None = None,
        max_retry_interval: timedelta | None = None,
        retry_interval_factor: float | None = None,
    ) -> DurableFuture[Any]:
        """A durable step: ``fn(*args)`` runs once; its result is journaled and replayed.

        Retryable failures end the attempt (the server retries it); after ``max_attempts`` or
        ``max_duration`` the step fails with TerminalError (500) carrying the last error.
        """
        inv = self._inv
        nid = inv.vm.sys_run(name)
        inv.flush()
        hint = _return_type(fn) if type_hint is OMITTED else type_hint
        if typing.get_origin(hint) is Awaitable or hint is type(None):
            hint = Any
        run_serde = serde or serde_for(hint)
        inv.register_run(
            nid,
            PendingRun(
                cid=int(nid[1]),
                name=name,
                command_index=inv.vm.command_index,
                fn=fn,
                args=args,
                serde=run_serde,
                retry=RunRetry(
                    max_attempts,
                    max_duration,
                    initial_retry_interval,
                    max_retry_interval,
                    retry_interval_factor,
                ),
            ),
        )
        return LeafFuture(inv, nid, value_decoder(run_serde.deserialize))

    def sleep(self, duration: timedelta, name: str = "") -> DurableFuture[None]:
        """A durable timer: survives restarts, costs nothing while waiting."""
        wake = int(self._inv.clock() + duration.total_seconds() * 1000)
        nid = self._inv.vm.sys_sleep(wake, name)
        self._inv.flush()
        return LeafFuture(self._inv, nid, void_decoder)

    # -- calls ------------------------------------------------------------------------------

    @overload
    def service(self, target: Callable[[Any, I], Awaitable[O]]) -> Caller[I, O]: ...
    @overload
    def service(self, target: Callable[[Any], Awaitable[O]]) -> Caller[None, O]: ...
    @overload
    def service(self, target: str, handler: str, *, output: type[O]) -> Caller[Any, O]: ...
    @overload
    def service(self, target: str, handler: str) -> Caller[Any, Any]: ...
    def service(self, target: Any, handler: Any = None, *, output: Any = OMITTED) -> Any:
        svc, h, out, arg = _call_target(ServiceType.SERVICE, target, None, handler, output)
        return Caller(self, svc, h, "", output=out, input_serde=arg)

    @overload
    def object(self, target: Callable[[Any, I], Awaitable[O]], key: str) -> Caller[I, O]: ...
    @overload
    def object(self, target: Callable[[Any], Awaitable[O]], key: str) -> Caller[None, O]: ...
    @overload
    def object(self, target: str, key: str, handler: str, *, output: type[O]) -> Caller[Any, O]: ...
    @overload
    def object(self, target: str, key: str, handler: str) -> Caller[Any, Any]: ...
    def object(self, target: Any, key: str, handler: Any = None, *, output: Any = OMITTED) -> Any:
        svc, h, out, arg = _call_target(ServiceType.VIRTUAL_OBJECT, target, key, handler, output)
        return Caller(self, svc, h, key, output=out, input_serde=arg)

    @overload
    def workflow(self, target: Callable[[Any, I], Awaitable[O]], key: str) -> Caller[I, O]: ...
    @overload
    def workflow(self, target: Callable[[Any], Awaitable[O]], key: str) -> Caller[None, O]: ...
    @overload
    def workflow(
        self, target: str, key: str, handler: str, *, output: type[O]
    ) -> Caller[Any, O]: ...
    @overload
    def workflow(self, target: str, key: str, handler: str) -> Caller[Any, Any]: ...
    def workflow(self, target: Any, key: str, handler: Any = None, *, output: Any = OMITTED) -> Any:
        svc, h, out, arg = _call_target(ServiceType.WORKFLOW, target, key, handler, output)
        return Caller(self, svc, h, key, output=out, input_serde=arg)

    # -- sends ------------------------------------------------------------------------------

    @overload
    def service_send(self, target: Callable[[Any, I], Awaitable[Any]]) -> Sender[I]: ...
    @overload
    def service_send(self, target: Callable[[Any], Awaitable[Any]]) -> Sender[None]: ...
    @overload
    def service_send(self, target: str, handler: str) -> Sender[Any]: ...
    def service_send(self, target: Any, handler: Any = None) -> Any:
        svc, h, _, arg = _call_target(ServiceType.SERVICE, target, None, handler, OMITTED)
        return Sender(self, svc, h, "", arg)

    @overload
    def object_send(self, target: Callable[[Any, I], Awaitable[Any]], key: str) -> Sender[I]: ...
    @overload
    def object_send(self, target: Callable[[Any], Awaitable[Any]], key: str) -> Sender[None]: ...
    @overload
    def object_send(self, target: str, key: str, handler: str) -> Sender[Any]: ...
    def object_send(self, target: Any, key: str, handler: Any = None) -> Any:
        svc, h, _, arg = _call_target(ServiceType.VIRTUAL_OBJECT, target, key, handler, OMITTED)
        return Sender(self, svc, h, key, arg)

    @overload
    def workflow_send(self, target: Callable[[Any, I], Awaitable[Any]], key: str) -> Sender[I]: ...
    @overload
    def workflow_send(self, target: Callable[[Any], Awaitable[Any]], key: str) -> Sender[None]: ...
    @overload
    def workflow_send(self, target: str, key: str, handler: str) -> Sender[Any]: ...
    def workflow_send(self, target: Any, key: str, handler: Any = None) -> Any:
        svc, h, _, arg = _call_target(ServiceType.WORKFLOW, target, key, handler, OMITTED)
        return Sender(self, svc, h, key, arg)

    # -- attach, output, cancel -------------------------------------------------------------

    def _attach(self, target: Target, output: Any) -> DurableFuture[Any]:
        nid = self._inv.vm.sys_attach(target)
        self._inv.flush()
        return LeafFuture(self._inv, nid, value_decoder(_serde_of(output).deserialize))

    def attach_invocation(self, invocation_id: str, *, output: Any = OMITTED) -> DurableFuture[Any]:
        """Wait for another invocation's result."""
        return self._attach(Target(invocation_id=invocation_id), output)

    def service_invocation_by_idempotency_key(
        self, service: str, handler: str, idempotency_key: str, *, output: Any = OMITTED
    ) -> DurableFuture[Any]:
        target = Target(service=service, handler=handler, idempotency_key=idempotency_key)
        return self._attach(target, output)

    def object_invocation_by_idempotency_key(
        self,
        service: str,
        key: str,
        handler: str,
        idempotency_key: str,
        *,
        output: Any = OMITTED,
    ) -> DurableFuture[Any]:
        target = Target(service=service, key=key, handler=handler, idempotency_key=idempotency_key)
        return self._attach(target, output)

    def workflow_invocation(
        self, workflow: str, key: str, *, output: Any = OMITTED
    ) -> DurableFuture[Any]:
        """Wait for a workflow run's result, by workflow key."""
        return self._attach(Target(workflow=workflow, key=key), output)

    def invocation_output(self, invocation_id: str, *, output: Any = OMITTED) -> DurableFuture[Any]:
        """Another invocation's result if it has completed, else None (never waits for it)."""
        nid = self._inv.vm.sys_get_output(Target(invocation_id=invocation_id))
        self._inv.flush()
        deserialize = _serde_of(output).deserialize

        def decode(result: Result) -> Any:
            raise_failure(result)
            return None if result.kind == "void" else deserialize(result.value)

        return LeafFuture(self._inv, nid, decode)

    def cancel_invocation(self, invocation_id: str) -> None:
        """Ask the server to cancel an invocation (it sees TerminalError 409 and may compensate)."""
        self._inv.vm.sys_cancel_invocation(invocation_id)
        self._inv.flush()

    # -- awakeables -------------------------------------------------------------------------

    def awakeable(self, type_hint: Any = OMITTED) -> tuple[str, DurableFuture[Any]]:
        """An id to hand to another system, and the future its resolution completes."""
        awakeable_id, nid = self._inv.vm.sys_awakeable()
        decode = value_decoder(_serde_of(type_hint).deserialize)
        return awakeable_id, LeafFuture(self._inv, nid, decode)

    def resolve_awakeable(self, awakeable_id: str, value: Any = None) -> None:
        self._inv.vm.sys_complete_awakeable(awakeable_id, Result("value", _encode(value)))
        self._inv.flush()

    def reject_awakeable(self, awakeable_id: str, message: str, code: int = 500) -> None:
        self._inv.vm.sys_complete_awakeable(awakeable_id, Result("failure", Failure(code, message)))
        self._inv.flush()


class ObjectSharedContext(Context):
    """A shared handler of a virtual object (or workflow): reads the state of its key."""

    def key(self) -> str:
        return self._inv.vm.start_info().key

    async def get(self, name: str, type_hint: Any = OMITTED) -> Any:
        """The state value ``name`` (None when it is not set)."""
        nid = self._inv.vm.sys_state_get(name)
        self._inv.flush()
        deserialize = _serde_of(type_hint).deserialize

        def decode(result: Result) -> Any:
            raise_failure(result)
            return None if result.kind == "void" else deserialize(result.value)

        return await LeafFuture(self._inv, nid, decode)

    async def state_keys(self) -> list[str]:
        nid = self._inv.vm.sys_state_keys()
        self._inv.flush()

        def decode(result: Result) -> list[str]:
            raise_failure(result)
            return sorted(k.decode() for k in (result.value or []))

        return await LeafFuture(self._inv, nid, decode)


class ObjectContext(ObjectSharedContext):
    """An exclusive handler of a virtual object: reads and writes the state of its key."""

    def set(self, name: str, value: Any, serde: Serde | None = None) -> None:
        self._inv.vm.sys_state_set(name, _encode(value, serde))
        self._inv.flush()

    def clear(self, name: str) -> None:
        self._inv.vm.sys_state_clear(name)
        self._inv.flush()

    def clear_all(self) -> None:
        self._inv.vm.sys_state_clear_all()
        self._inv.flush()


class DurablePromise(Generic[T]):
    """A workflow's named promise: completed once, awaited by any handler of the workflow."""

    def __init__(self, ctx: Context, name: str, type_hint: Any) -> None:
        self._ctx, self._name = ctx, name
        self._serde = _serde_of(type_hint)

    def value(self) -> DurableFuture[T]:
        """The value, once some handler resolved the promise (raises if it was rejected)."""
        inv = self._ctx._inv
        nid = inv.vm.sys_get_promise(self._name)
        inv.flush()
        return LeafFuture(inv, nid, value_decoder(self._serde.deserialize))

    def peek(self) -> DurableFuture[T | None]:
        """The value if the promise is completed, else None."""
        inv = self._ctx._inv
        nid = inv.vm.sys_peek_promise(self._name)
        inv.flush()
        deserialize = self._serde.deserialize

        def decode(result: Result) -> T | None:
            raise_failure(result)
            return None if result.kind == "void" else typing.cast(T, deserialize(result.value))

        return LeafFuture(inv, nid, decode)

    def resolve(self, value: T) -> DurableFuture[None]:
        """Complete with a value; TerminalError(409) if it was already completed."""
        return self._complete(Result("value", _encode(value)))

    def reject(self, message: str, code: int = 500) -> DurableFuture[None]:
        """Complete with a failure; TerminalError(409) if it was already completed."""
        return self._complete(Result("failure", Failure(code, message)))

    def _complete(self, result: Result) -> DurableFuture[None]:
        inv = self._ctx._inv
        nid = inv.vm.sys_complete_promise(self._name, result)
        inv.flush()
        return LeafFuture(inv, nid, void_decoder)


class WorkflowSharedContext(ObjectSharedContext):
    """A shared handler of a workflow: state reads and the workflow's promises."""

    def promise(self, name: str, type_hint: Any = OMITTED) -> DurablePromise[Any]:
        return DurablePromise(self, name, type_hint)


class WorkflowContext(ObjectContext, WorkflowSharedContext):
    """A workflow's run handler: state reads and writes, and the workflow's promises."""


def context_for(inv: Invocation) -> Context:
    """The context class a handler of this kind gets."""
    service_type, ty = inv.handler.service_type, inv.handler.ty
    if service_type is ServiceType.SERVICE:
        return Context(inv)
    if service_type is ServiceType.VIRTUAL_OBJECT:
        return ObjectContext(inv) if ty is HandlerType.EXCLUSIVE else ObjectSharedContext(inv)
    return WorkflowContext(inv) if ty is HandlerType.WORKFLOW else WorkflowSharedContext(inv)


__all__ = [
    "OMITTED",
    "Caller",
    "Context",
    "DurablePromise",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "SendHandle",
    "Sender",
    "WorkflowContext",
    "WorkflowSharedContext",
    "context_for",
]
