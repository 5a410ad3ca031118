"""Definitions: services, virtual objects and workflows, their handlers and options.

A decorator registers the handler function (unchanged) with its service and with
``perdure.sdk.refs``, infers its argument and result types from the type hints, picks their
serdes, and contributes a handler entry to the discovery manifest.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal, TypeVar

from perdure.protocol.manifest import (
    HandlerManifest,
    HandlerType,
    InputSpec,
    OnMaxAttempts,
    Options,
    OutputSpec,
    ServiceManifest,
    ServiceType,
)
from perdure.sdk.refs import NO_INPUT, HandlerRef, register
from perdure.sdk.serde import BYTES_CONTENT_TYPE, Serde, serde_for

F = TypeVar("F", bound=Callable[..., Any])

HandlerKind = Literal["exclusive", "shared", "workflow"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the server retries failed attempts of a service's or handler's invocations."""

    initial_interval: timedelta | None = None
    """Delay before the first retry (server default: 500 ms)."""
    exponentiation_factor: float | None = None
    """Growth of the delay per attempt (server default: 2.0)."""
    max_interval: timedelta | None = None
    """Upper bound of the delay (server default: 60 s)."""
    max_attempts: int | None = None
    """Attempts including the first (server default: 70)."""
    on_max_attempts: Literal["pause", "kill"] | None = None
    """What happens when attempts run out (server default: pause)."""


def _ms(value: timedelta | None, what: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise TypeError(f"{what} must be a timedelta, got {type(value).__name__}")
    return int(value.total_seconds() * 1000)


def build_options(
    *,
    description: str | None = None,
    metadata: Mapping[str, str] | None = None,
    inactivity_timeout: timedelta | None = None,
    abort_timeout: timedelta | None = None,
    idempotency_retention: timedelta | None = None,
    journal_retention: timedelta | None = None,
    workflow_retention: timedelta | None = None,
    ingress_private: bool | None = None,
    enable_lazy_state: bool | None = None,
    retry_policy: RetryPolicy | None = None,
) -> Options:
    """The manifest options for the keyword options shared by services and handlers."""
    policy = retry_policy or RetryPolicy()
    on_max = policy.on_max_attempts
    if on_max is not None and on_max not in ("pause", "kill"):
        raise ValueError(f"on_max_attempts must be 'pause' or 'kill', got {on_max!r}")
    return Options(
        documentation=description,
        metadata=dict(metadata) if metadata is not None else None,
        inactivity_timeout=_ms(inactivity_timeout, "inactivity_timeout"),
        abort_timeout=_ms(abort_timeout, "abort_timeout"),
        idempotency_retention=_ms(idempotency_retention, "idempotency_retention"),
        journal_retention=_ms(journal_retention, "journal_retention"),
        workflow_completion_retention=_ms(workflow_retention, "workflow_retention"),
        ingress_private=ingress_private,
        enable_lazy_state=enable_lazy_state,
        retry_policy_initial_interval=_ms(policy.initial_interval, "initial_interval"),
        retry_policy_max_interval=_ms(policy.max_interval, "max_interval"),
        retry_policy_max_attempts=policy.max_attempts,
        retry_policy_exponentiation_factor=policy.exponentiation_factor,
        retry_policy_on_max_attempts=None if on_max is None else OnMaxAttempts(on_max.upper()),
    )


@dataclass(frozen=True, slots=True)
class HandlerDef:
    """One handler: its function, types, serdes and manifest entry."""

    service_name: str
    service_type: ServiceType
    name: str
    ty: HandlerType | None
    fn: Callable[..., Any]
    input_type: Any
    output_type: Any
    input_serde: Serde
    output_serde: Serde
    options: Options = field(default_factory=Options)

    @property
    def takes_input(self) -> bool:
        return self.input_type is not NO_INPUT

    @property
    def kind(self) -> HandlerType | None:
        """EXCLUSIVE/SHARED/WORKFLOW for keyed services, None for plain service handlers."""
        return self.ty

    def manifest(self) -> HandlerManifest:
        input_spec: InputSpec | None = None
        if self.takes_input:
            bytes_input = self.input_serde.content_type == BYTES_CONTENT_TYPE
            input_spec = InputSpec(
                required=False,
                content_type="*/*" if bytes_input else self.input_serde.content_type,
                json_schema=None if bytes_input else self.input_serde.json_schema(),
            )
        output_spec = OutputSpec(
            content_type=self.output_serde.content_type,
            set_content_type_if_empty=False,
            json_schema=self.output_serde.json_schema(),
        )
        return HandlerManifest(
            name=self.name,
            ty=self.ty,
            input=input_spec,
            output=output_spec,
            options=self.options,
        )


def _signature_types(fn: Callable[..., Any]) -> tuple[Any, Any]:
    """(argument type or NO_INPUT, result type) of ``async def h(ctx[, arg]) -> R``."""
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"handler {fn.__qualname__} must be an async function")
    params = list(inspect.signature(fn).parameters.values())
    if not 1 <= len(params) <= 2:
        raise TypeError(
            f"handler {fn.__qualname__} must take the context and at most one argument, "
            f"it takes {len(params)} parameters"
        )
    try:
        hints = typing.get_type_hints(fn)
    except NameError as exc:
        raise TypeError(f"cannot resolve the type hints of {fn.__qualname__}: {exc}") from None
    input_type = hints.get(params[1].name, Any) if len(params) == 2 else NO_INPUT
    output_type = hints.get("return", Any)
    return input_type, output_type


_KINDS = {"exclusive": HandlerType.EXCLUSIVE, "shared": HandlerType.SHARED}


class _Definition:
    """What services, virtual objects and workflows share: a name, options and handlers."""

    service_type: ServiceType

    def __init__(
        self,
        name: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        inactivity_timeout: timedelta | None = None,
        abort_timeout: timedelta | None = None,
        idempotency_retention: timedelta | None = None,
        journal_retention: timedelta | None = None,
        workflow_retention: timedelta | None = None,
        ingress_private: bool | None = None,
        enable_lazy_state: bool | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if workflow_retention is not None:
            raise TypeError("workflow_retention is an option of Workflow.main(), not of a service")
        self.name = name
        self.options = build_options(
            description=description,
            metadata=metadata,
            inactivity_timeout=inactivity_timeout,
            abort_timeout=abort_timeout,
            idempotency_retention=idempotency_retention,
            journal_retention=journal_retention,
            ingress_private=ingress_private,
            enable_lazy_state=enable_lazy_state,
            retry_policy=retry_policy,
        )
        self.handlers: dict[str, HandlerDef] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def _add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None,
        ty: HandlerType | None,
        serde: Serde | None,
        input_serde: Serde | None,
        output_serde: Serde | None,
        options: dict[str, Any],
    ) -> None:
        input_type, output_type = _signature_types(fn)
        handler_name = name or fn.__name__
        if handler_name in self.handlers:
            raise ValueError(f"{self.name} already has a handler named {handler_name!r}")
        if options.get("description") is None and fn.__doc__:
            options = {**options, "description": inspect.cleandoc(fn.__doc__)}
        handler = HandlerDef(
            service_name=self.name,
            service_type=self.service_type,
            name=handler_name,
            ty=ty,
            fn=fn,
            input_type=input_type,
            output_type=output_type,
            input_serde=input_serde or serde or serde_for(input_type),
            output_serde=output_serde or serde or serde_for(output_type),
            options=build_options(**options),
        )
        self.handlers[handler_name] = handler
        register(
            fn,
            HandlerRef(self.name, handler_name, self.service_type, input_type, output_type),
        )

    def _decorator(
        self,
        *,
        name: str | None,
        ty: HandlerType | None,
        serde: Serde | None,
        input_serde: Serde | None,
        output_serde: Serde | None,
        options: dict[str, Any],
    ) -> Callable[[F], F]:
        """A decorator that registers the function and returns it unchanged."""
        build_options(**options)  # unknown or ill-typed options fail here, not at decoration

        def decorate(fn: F) -> F:
            self._add(
                fn,
                name=name,
                ty=ty,
                serde=serde,
                input_serde=input_serde,
                output_serde=output_serde,
                options=options,
            )
            return fn

        return decorate

    def manifest(self) -> ServiceManifest:
        return ServiceManifest(
            name=self.name,
            ty=self.service_type,
            handlers=tuple(h.manifest() for h in self.handlers.values()),
            options=self.options,
        )


class Service(_Definition):
    """Stateless handlers, addressed by service and handler name."""

    service_type = ServiceType.SERVICE

    def handler(
        self,
        name: str | None = None,
        *,
        kind: HandlerKind | None = None,
        serde: Serde | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        if kind not in (None, "shared"):
            raise ValueError(f"a service handler cannot be {kind!r}")
        return self._decorator(
            name=name,
            ty=None,
            serde=serde,
            input_serde=input_serde,
            output_serde=output_serde,
            options=options,
        )


class VirtualObject(_Definition):
    """Handlers keyed by an object key, with K/V state; one exclusive handler per key at a time."""

    service_type = ServiceType.VIRTUAL_OBJECT

    def handler(
        self,
        name: str | None = None,
        *,
        kind: HandlerKind = "exclusive",
        serde: Serde | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        if kind not in _KINDS:
            raise ValueError(f"an object handler is 'exclusive' or 'shared', not {kind!r}")
        return self._decorator(
            name=name,
            ty=_KINDS[kind],
            serde=serde,
            input_serde=input_serde,
            output_serde=output_serde,
            options=options,
        )


class Workflow(_Definition):
    """A ``run`` handler that executes once per workflow key, plus shared handlers."""

    service_type = ServiceType.WORKFLOW

    def main(
        self,
        *,
        serde: Serde | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        """The workflow's run handler (always exposed as ``run``)."""
        if options.get("idempotency_retention") is not None:
            raise TypeError("a workflow's run handler has workflow_retention, not idempotency")
        return self._decorator(
            name="run",
            ty=HandlerType.WORKFLOW,
            serde=serde,
            input_serde=input_serde,
            output_serde=output_serde,
            options=options,
        )

    def handler(
        self,
        name: str | None = None,
        *,
        kind: HandlerKind = "shared",
        serde: Serde | None = None,
        input_serde: Serde | None = None,
        output_serde: Serde | None = None,
        **options: Any,
    ) -> Callable[[F], F]:
        if kind != "shared":
            raise ValueError("a workflow's other handlers are shared; use main() for the run")
        if options.get("workflow_retention") is not None:
            raise TypeError("workflow_retention belongs on Workflow.main()")
        return self._decorator(
            name=name,
            ty=HandlerType.SHARED,
            serde=serde,
            input_serde=input_serde,
            output_serde=output_serde,
            options=options,
        )


ServiceDefinition = Service | VirtualObject | Workflow

__all__ = [
    "HandlerDef",
    "HandlerKind",
    "RetryPolicy",
    "Service",
    "ServiceDefinition",
    "VirtualObject",
    "Workflow",
    "build_options",
]
