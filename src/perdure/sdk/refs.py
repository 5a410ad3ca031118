"""Handler references: a handler function, once registered by a decorator, addresses its target.

The SDK's decorators call ``register``; the handler context and the ingress client call
``ref_of`` to turn ``greet`` into ("GreeterService", "Greet") and to know its argument and result
types. A function that was never registered is a TypeError, so typos fail loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perdure.protocol.manifest import ServiceType

NO_INPUT: Any = object()
"""``HandlerRef.input_type`` of a handler that takes no argument besides the context."""


@dataclass(frozen=True, slots=True)
class HandlerRef:
    service: str
    handler: str
    service_type: ServiceType
    input_type: Any = Any
    """The type hint of the handler's argument (NO_INPUT if it takes none; Any if unannotated)."""
    output_type: Any = Any
    """The type hint of its result (Any if unannotated)."""


_REFS: dict[Callable[..., Any], HandlerRef] = {}


def register(fn: Callable[..., Any], ref: HandlerRef) -> None:
    """Record what ``fn`` addresses; registering one function for two targets is an error."""
    existing = _REFS.get(fn)
    if existing is not None and existing != ref:
        raise ValueError(
            f"{fn.__qualname__} is already registered as {existing.service}/{existing.handler}"
        )
    _REFS[fn] = ref


def ref_of(fn: Callable[..., Any]) -> HandlerRef:
    """The target a handler function addresses; TypeError if it is not a registered handler."""
    try:
        return _REFS[fn]
    except (KeyError, TypeError):
        name = getattr(fn, "__qualname__", repr(fn))
        raise TypeError(
            f"{name} is not a registered perdure handler: decorate it with "
            "@service.handler(), @object.handler() or @workflow.main() first"
        ) from None
