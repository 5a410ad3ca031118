"""In-process deployments (``local://NAME``): the engine drives perdure-SDK handlers living in the
same event loop, with no sockets, and a re-mount swaps the code under the same deployment."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

import perdure
from perdure import Context, ObjectContext
from perdure.server.runtime import RegistrationError, Runtime


def _services(version: str) -> perdure.App:
    greeter = perdure.Service("Greeter")
    counter = perdure.VirtualObject("Counter")

    @greeter.handler()
    async def greet(ctx: Context, name: str) -> str:
        await ctx.sleep(__import__("datetime").timedelta(milliseconds=10))
        return f"{version} {name}"

    @counter.handler()
    async def add(ctx: ObjectContext, delta: int) -> int:
        total = (await ctx.get("total", type_hint=int) or 0) + delta
        ctx.set("total", total)
        return total

    return perdure.app([greeter, counter])


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


def test_calls_run_in_process(tmp_path: Path) -> None:
    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        deployment = await runtime.mount("app", _services("v1"))
        assert deployment.startswith("dp_")
        assert runtime.registry.deployments[deployment].record.uri == "local://app/"
        response = await client.post("/Greeter/greet", json="Ann")
        assert (response.status_code, response.json()) == (200, "v1 Ann")
        for expected in (2, 5):
            response = await client.post("/Counter/ann/add", json=3 if expected == 5 else 2)
            assert response.json() == expected
        assert runtime.engine.state("Counter", "ann") == [(b"total", b"5")]

    _run(tmp_path, body)


def test_remount_keeps_the_deployment_and_runs_the_new_code(tmp_path: Path) -> None:
    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        first = await runtime.mount("app", _services("v1"))
        assert (await client.post("/Greeter/greet", json="Ann")).json() == "v1 Ann"
        second = await runtime.mount("app", _services("v2"))
        assert second == first
        assert (await client.post("/Greeter/greet", json="Bo")).json() == "v2 Bo"

    _run(tmp_path, body)


def test_mounting_an_unknown_or_broken_app_is_a_clear_error(tmp_path: Path) -> None:
    async def broken(scope: object, receive: object, send: object) -> None:
        raise RuntimeError("boom")

    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        with pytest.raises(RegistrationError, match="boom"):
            await runtime.mount("broken", broken)
        admin = httpx.ASGITransport(app=runtime.admin)
        async with httpx.AsyncClient(transport=admin, base_url="http://a") as http:
            response = await http.post("/deployments", json={"uri": "local://nothing"})
        assert response.status_code == 400
        assert "no in-process app is mounted as local://nothing" in response.json()["message"]

    _run(tmp_path, body)


def test_the_invocation_listing_filters_by_status_before_limiting(tmp_path: Path) -> None:
    async def body(runtime: Runtime, client: httpx.AsyncClient) -> None:
        await runtime.mount("app", _services("v1"))
        for name in ("a", "b"):
            assert (await client.post("/Greeter/greet", json=name)).status_code == 200
        later = await client.post("/Greeter/greet/send?delay=1h", json="c")
        assert later.status_code == 202
        admin = httpx.ASGITransport(app=runtime.admin)
        async with httpx.AsyncClient(transport=admin, base_url="http://a") as http:
            rows = (await http.get("/invocations?status=completed&limit=1")).json()["invocations"]
            assert [r["status"] for r in rows] == ["completed"]
            scheduled = (await http.get("/invocations?status=scheduled")).json()["invocations"]
            assert [r["id"] for r in scheduled] == [later.json()["invocationId"]]
            bad = await http.get("/invocations?status=done")
            assert bad.status_code == 400
            assert "use one of scheduled, inboxed" in bad.json()["message"]

    _run(tmp_path, body)
