"""Write a client scenario once, run it with Client and with AsyncClient.

A scenario is an ``async def`` taking a ``Mode``; ``await m(x)`` yields a sync call's result
as is and awaits an async one, and ``m.start(fn)`` runs a call in the background (a thread for
Client, a task for AsyncClient) so a test can observe it while the invocation is still running.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from perdure.client import AsyncClient, Client

WAIT = 60.0  # seconds any single step of a scenario may take on a loaded 2-core machine


class Pending:
    def __init__(self, future: concurrent.futures.Future[Any] | asyncio.Task[Any]) -> None:
        self._future = future

    def done(self) -> bool:
        return self._future.done()

    async def result(self, timeout: float = WAIT) -> Any:
        if isinstance(self._future, asyncio.Task):
            return await asyncio.wait_for(self._future, timeout)
        return self._future.result(timeout)


class Mode:
    def __init__(self, client: Client | AsyncClient, pool: concurrent.futures.Executor) -> None:
        self.client: Any = client
        self._pool = pool

    @property
    def is_async(self) -> bool:
        return isinstance(self.client, AsyncClient)

    async def __call__(self, value: Any) -> Any:
        return await value if inspect.isawaitable(value) else value

    def start(self, call: Callable[[], Any]) -> Pending:
        if self.is_async:
            return Pending(asyncio.ensure_future(call()))
        return Pending(self._pool.submit(call))

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def until(self, call: Callable[[], Any], accept: Callable[[Any], bool]) -> Any:
        """Poll ``call`` until ``accept(result)``, for at most WAIT seconds."""
        deadline = asyncio.get_running_loop().time() + WAIT
        while True:
            value = await self(call())
            if accept(value):
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"gave up waiting; last value {value!r}")
            await asyncio.sleep(0.05)


def run_scenario(
    mode: str, url: str, scenario: Callable[[Mode], Awaitable[None]], **client_kwargs: Any
) -> None:
    async def main() -> None:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            if mode == "sync":
                with Client(url, **client_kwargs) as client:
                    await asyncio.wait_for(scenario(Mode(client, pool)), 3 * WAIT)
            else:
                async with AsyncClient(url, **client_kwargs) as client:
                    await asyncio.wait_for(scenario(Mode(client, pool)), 3 * WAIT)

    asyncio.run(main())
