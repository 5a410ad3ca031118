"""A single-consumer queue for the hot paths of an attempt (response chunks, request messages).

``asyncio.Queue`` looks its event loop up on every wait (a ``getpid`` system call per lookup on
Python 3.11) and keeps a deque of waiters for many consumers; a stream has exactly one reader,
so one deque and at most one waiting future are enough.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    __slots__ = ("_items", "_loop", "_waiter")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def put(self, item: T) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def get(self) -> T:
        """The next item, waiting for one; one caller at a time."""
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("Mailbox.get is already awaited by another caller")
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()
