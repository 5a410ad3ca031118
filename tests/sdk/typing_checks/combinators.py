"""Type-checked by tests/sdk/test_typing.py (never imported by pytest): ``perdure.all`` and
``perdure.any`` are real attributes of the package, with the element type carried through."""

from __future__ import annotations

from datetime import timedelta
from typing import assert_type

import perdure
from perdure import Context, DurableFuture


async def combine(ctx: Context) -> None:
    a: DurableFuture[int] = ctx.run("a", lambda: 1)
    b: DurableFuture[int] = ctx.run("b", lambda: 2)
    assert_type(await perdure.all(a, b), list[int])
    assert_type(await perdure.gather(a, b), list[int])
    assert_type(await perdure.any(a, b), int)
    assert_type(await perdure.first_completed(a, b), DurableFuture[int])
    async for done in perdure.as_completed(a, b):
        assert_type(await done, int)
    # Mixed element types join to their common supertype.
    mixed = await perdure.all(a, ctx.sleep(timedelta(seconds=1)))
    assert_type(mixed, list[int | None])
