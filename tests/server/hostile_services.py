"""perdure-SDK services for tests/server/test_hostile_input.py: an echo service, a keyed object."""

from __future__ import annotations

from typing import Any

import perdure
from perdure import Context, ObjectContext

echo = perdure.Service("Echo")


@echo.handler()
async def echo_any(ctx: Context, value: Any) -> Any:
    return value


@echo.handler()
async def echo_list(ctx: Context, value: list[int]) -> list[int]:
    return value


@echo.handler()
async def ping(ctx: Context) -> str:
    return "pong"


box = perdure.VirtualObject("Box")


@box.handler()
async def put(ctx: ObjectContext, value: str) -> None:
    ctx.set("value", value)


app = perdure.app([echo, box])
