"""A perdure-SDK deployment for the connection liveness tests, served by ``perdure.serve``:

python -m tests.server.liveness_services PORT [MAX_REQUESTS]
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

import perdure
from perdure import Context

echo = perdure.Service("LiveEcho")


@echo.handler()
async def echo_text(ctx: Context, text: str) -> str:
    return text


@echo.handler()
async def nap(ctx: Context, seconds: float) -> str:
    """Holds its stream open (no durable step): a deployment busy with a request."""
    await asyncio.sleep(seconds)
    return "rested"


@echo.handler()
async def nap_then_sleep(ctx: Context, _: int) -> str:
    """Waits on its open stream for a durable sleep's completion."""
    await ctx.sleep(timedelta(seconds=30))
    return "woke"


app = perdure.app([echo])

if __name__ == "__main__":
    limit = int(sys.argv[2]) if len(sys.argv) > 2 and sys.argv[2] != "-" else None
    grace = timedelta(seconds=float(sys.argv[3])) if len(sys.argv) > 3 else timedelta(seconds=30)
    perdure.serve(
        app, host="127.0.0.1", port=int(sys.argv[1]), max_requests=limit, grace_period=grace
    )
