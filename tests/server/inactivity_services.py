"""Services with inactivity timeout 0 set in the manifest (per handler, and per service), for
``test_manifest_timeouts``. Each attempt of ``three_runs`` is counted (the handler's body runs
again on every attempt, replaying), and each executed ``ctx.run`` appends
``invocation attempt step`` to ``runs.log`` in PERDURE_EFFECTS."""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta
from pathlib import Path

import perdure
from perdure import Context

attempts: Counter[str] = Counter()


def record(line: str) -> None:
    with open(Path(os.environ.get("PERDURE_EFFECTS", "/tmp")) / "runs.log", "a") as f:
        f.write(line + "\n")


async def _three_runs(ctx: Context, tag: str) -> list[str]:
    invocation = ctx.request().id
    attempts[invocation] += 1
    attempt = attempts[invocation]
    out = []
    for step in range(3):

        def effect(step: int = step) -> str:
            record(f"{invocation} {attempt} {step}")
            return f"{tag}{step}"

        out.append(await ctx.run(f"step{step}", effect))
    return out


per_handler = perdure.Service("PerHandlerInactivity")
per_service = perdure.Service("PerServiceInactivity", inactivity_timeout=timedelta(0))


@per_handler.handler(inactivity_timeout=timedelta(0))
async def three_runs(ctx: Context, tag: str) -> list[str]:
    return await _three_runs(ctx, tag)


@per_service.handler("three_runs")
async def three_runs_too(ctx: Context, tag: str) -> list[str]:
    return await _three_runs(ctx, tag)


app = perdure.app([per_handler, per_service])
