"""Durable futures and the combinators over them.

A durable future stands for a result the server journals: a call, a sleep, a step, an
awakeable, a promise, an attach. Awaiting it resolves against the notifications the server
sent, consumed one at a time in journal order, so that ``gather``, ``any``, ``first_completed``
and ``as_completed`` decide the same way on every replay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Generic, TypeVar

from perdure.sdk.errors import TerminalError
from perdure.sdk.invocation import Invocation
from perdure.sdk.vm import NotificationId, Result

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class DurableFuture(Generic[T_co]):
    """A journaled result; ``await`` it for the value (or the TerminalError it failed with).

    Covariant: a ``DurableFuture[int]`` is a ``DurableFuture[int | None]``, so combinators over
    futures of different types infer their common type.
    """

    _inv: Invocation

    def _leaves(self) -> list[NotificationId]:
        raise NotImplementedError

    def _done(self) -> bool:
        raise NotImplementedError

    def _failed(self) -> bool:
        """Done with a failure (meaningful once ``_done()``)."""
        raise NotImplementedError

    def _value(self) -> T_co:
        """The value, or raise the failure; only once ``_done()``."""
        raise NotImplementedError

    async def _wait(self) -> T_co:
        await self._inv.await_until(self._leaves(), self._done)
        return self._value()

    def __await__(self) -> Generator[Any, None, T_co]:
        return self._wait().__await__()

    def done(self) -> bool:
        """Whether the result is already known in this attempt (no waiting needed)."""
        return self._done()


class LeafFuture(DurableFuture[T_co]):
    """One notification, decoded by ``decode`` (which raises TerminalError for failures)."""

    def __init__(self, inv: Invocation, nid: NotificationId, decode: Callable[[Result], T_co]):
        self._inv = inv
        self._nid = nid
        self._decode = decode
        self._cached: tuple[T_co] | None = None

    def _leaves(self) -> list[NotificationId]:
        return [self._nid]

    def _done(self) -> bool:
        return self._inv.vm.result(self._nid) is not None

    def _failed(self) -> bool:
        result = self._inv.vm.result(self._nid)
        return result is not None and result.is_failure

    def _value(self) -> T_co:
        if self._cached is None:
            result = self._inv.vm.result(self._nid)
            assert result is not None
            self._cached = (self._decode(result),)
        return self._cached[0]


def raise_failure(result: Result) -> None:
    if result.is_failure:
        failure = result.value
        raise TerminalError(failure.message, failure.code, failure.metadata)


def value_decoder(deserialize: Callable[[bytes], T]) -> Callable[[Result], T]:
    """Decode a value notification (void reads as the empty payload)."""

    def decode(result: Result) -> T:
        raise_failure(result)
        return deserialize(result.value if result.kind == "value" else b"")

    return decode


def void_decoder(result: Result) -> None:
    raise_failure(result)


class CallFuture(LeafFuture[T_co]):
    """A request-response call: the callee's result, and its invocation id."""

    def __init__(
        self,
        inv: Invocation,
        id_nid: NotificationId,
        result_nid: NotificationId,
        decode: Callable[[Result], T_co],
    ) -> None:
        super().__init__(inv, result_nid, decode)
        self._id = LeafFuture(inv, id_nid, lambda r: str(r.value))

    async def invocation_id(self) -> str:
        return await self._id


# ---------------------------------------------------------------------------------------------
# Combinators
# ---------------------------------------------------------------------------------------------


def _invocation_of(futures: tuple[DurableFuture[Any], ...]) -> Invocation:
    if not futures:
        raise ValueError("a combinator needs at least one durable future")
    for f in futures:
        if not isinstance(f, DurableFuture):
            raise TypeError(f"{f!r} is not a durable future (ctx.run, ctx.sleep, a call, ...)")
    inv = futures[0]._inv
    if any(f._inv is not inv for f in futures):
        raise ValueError("durable futures of different invocations cannot be combined")
    return inv


class _Combined(DurableFuture[T_co]):
    def __init__(self, futures: tuple[DurableFuture[Any], ...]) -> None:
        self._inv = _invocation_of(futures)
        self._futures = futures

    def _leaves(self) -> list[NotificationId]:
        return [n for f in self._futures for n in f._leaves()]


class _Gather(_Combined[list[Any]]):
    """All results in order; the first failure wins."""

    def _done(self) -> bool:
        return all(f._done() for f in self._futures) or any(
            f._done() and f._failed() for f in self._futures
        )

    def _failed(self) -> bool:
        return any(f._done() and f._failed() for f in self._futures)

    def _value(self) -> list[Any]:
        for f in self._futures:
            if f._done() and f._failed():
                f._value()  # raises
        return [f._value() for f in self._futures]


class _Any(_Combined[Any]):
    """The first success; TerminalError when all failed."""

    def _done(self) -> bool:
        return any(f._done() and not f._failed() for f in self._futures) or all(
            f._done() for f in self._futures
        )

    def _failed(self) -> bool:
        return all(f._done() and f._failed() for f in self._futures)

    def _value(self) -> Any:
        for f in self._futures:
            if f._done() and not f._failed():
                return f._value()
        messages = []
        for f in self._futures:
            try:
                f._value()
            except TerminalError as exc:
                messages.append(exc.message)
        raise TerminalError("all futures failed: " + "; ".join(messages))


class _FirstCompleted(_Combined[DurableFuture[Any]]):
    """The future that completed first (its own outcome is not raised)."""

    def _done(self) -> bool:
        return any(f._done() for f in self._futures)

    def _failed(self) -> bool:
        return False

    def _value(self) -> DurableFuture[Any]:
        return next(f for f in self._futures if f._done())


def gather(*futures: DurableFuture[T]) -> DurableFuture[list[T]]:
    """Await every future; the results in argument order. The first failure raises."""
    return _Gather(futures)


all_ = gather
"""``perdure.all``: the same as ``gather``."""


def any_(*futures: DurableFuture[T]) -> DurableFuture[T]:
    """``perdure.any``: the first successful result; TerminalError if every future failed."""
    return _Any(futures)


def first_completed(*futures: DurableFuture[T]) -> DurableFuture[DurableFuture[T]]:
    """The future that completes first (await it, or check it, for its outcome)."""
    return _FirstCompleted(futures)


async def as_completed(*futures: DurableFuture[T]) -> AsyncIterator[DurableFuture[T]]:
    """The futures in the order they complete (deterministic across replays)."""
    remaining: list[DurableFuture[T]] = list(futures)
    while remaining:
        first: DurableFuture[T] = await _FirstCompleted(tuple(remaining))
        remaining.remove(first)
        yield first


__all__ = [
    "CallFuture",
    "DurableFuture",
    "LeafFuture",
    "all_",
    "any_",
    "as_completed",
    "first_completed",
    "gather",
    "raise_failure",
    "value_decoder",
    "void_decoder",
]
