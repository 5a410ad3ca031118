"""Starting invocations over on new code (what ``perdure dev`` does after a reload), in-process:
``Invoker.restart`` replaces a live attempt with one planned from committed storage, so the new
code replays the journal (journaled steps are not executed again), and retries an invocation that
is backing off right away."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import httpx

import perdure
from perdure import Context
from perdure.protocol import InvocationId
from perdure.server.records import Status
from perdure.server.runtime import Runtime


def _waiting_app(version: str, steps: list[str], awakeables: list[str]) -> perdure.App:
    svc = perdure.Service("Waiter")

    @svc.handler()
    async def wait(ctx: Context, name: str) -> str:
        await ctx.run("step", lambda: steps.append(version))
        awakeable_id, done = ctx.awakeable(type_hint=str)
        awakeables.append(awakeable_id)
        return f"{version} {name} {await done}"

    return perdure.app([svc])


def _flaky_app(fixed: bool) -> perdure.App:
    svc = perdure.Service(
        "Flaky", retry_policy=perdure.RetryPolicy(initial_interval=timedelta(minutes=5))
    )

    @svc.handler()
    async def work(ctx: Context) -> str:
        if not fixed:
            raise RuntimeError("a bug")
        return "fixed"

    return perdure.app([svc])


async def _until(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)
    assert check(), what


def _run(tmp: Path, body: Callable[[Runtime, httpx.AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        runtime = Runtime(tmp / "db.sqlite3")
        runtime.start()
        transport = httpx.ASGITransport(app=runtime.ingress)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://ingress") as client:
                await asyncio.wait_for(body(runtime, client), 30)
        finally:
            await runtime.stop(1.0)

    asyncio.run(main())


def test_a_live_attempt_starts_over_on_the_new_code_without_repeating_steps(
    tmp_path: Path,
) -> None:
    steps: list[str] = []
    awakeables: list[str] = []

    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        deployment = await runtime.mount("app", _waiting_app("v1", steps, awakeables))
        sent = await client.post("/Waiter/wait/send", json="Ann")
        invocation = InvocationId.parse(sent.json()["invocationId"])
        await _until(lambda: len(awakeables) == 1, "v1 waits on its awakeable")
        assert runtime.invoker.live(deployment) == [invocation]

        await runtime.mount("app", _waiting_app("v2", steps, awakeables))
        runtime.invoker.restart([invocation])
        await _until(lambda: len(awakeables) == 2, "v2 replays up to the awakeable")
        assert awakeables[1] == awakeables[0]  # the same journal entry, replayed
        assert steps == ["v1"]  # the journaled step is not executed again

        resolved = await client.post(f"/restate/awakeables/{awakeables[0]}/resolve", json="ok")
        assert resolved.status_code == 202
        result = await client.get(f"/restate/invocation/{invocation}/attach")
        assert result.json() == "v2 Ann ok"

    _run(tmp_path, body)


def test_an_invocation_backing_off_is_retried_now_on_the_new_code(tmp_path: Path) -> None:
    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        await runtime.mount("app", _flaky_app(fixed=False))
        sent = await client.post("/Flaky/work/send")
        invocation = InvocationId.parse(sent.json()["invocationId"])

        def backing_off() -> bool:
            inv = runtime.engine.invocation(invocation)
            return inv is not None and inv.status is Status.BACKING_OFF

        await _until(backing_off, "the failing attempt backs off (for 5 minutes)")
        await runtime.mount("app", _flaky_app(fixed=True))
        runtime.invoker.restart([invocation])
        result = await client.get(f"/restate/invocation/{invocation}/attach")
        assert (result.status_code, result.json()) == (200, "fixed")

    _run(tmp_path, body)


def test_restart_leaves_completed_and_unknown_invocations_alone(tmp_path: Path) -> None:
    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        await runtime.mount("app", _flaky_app(fixed=True))
        done = await client.post("/Flaky/work")
        invocation = InvocationId.parse(done.headers["x-restate-id"])
        assert runtime.engine.run(lambda core: core.restart(invocation)) is False
        assert runtime.engine.run(lambda core: core.restart(InvocationId.new())) is False

    _run(tmp_path, body)
