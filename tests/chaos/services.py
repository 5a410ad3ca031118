"""The chaos deployment: perdure-SDK services covering every kind of work, each durable step
recorded in the ledger (tests/chaos/ledger.py). Run as its own process:

    python -m tests.chaos.services --port PORT --ledger PATH [--goaway-after N]

served by ``perdure.serve`` (h2c and HTTP/1.1), or with ``--goaway-after N`` by hypercorn
configured to end every HTTP/2 connection with a GOAWAY after N requests (the GOAWAY fault).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import perdure
from perdure import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    WorkflowContext,
    WorkflowSharedContext,
)
from tests.chaos.ledger import Ledger

_ledger: Ledger | None = None


def ledger() -> Ledger:
    global _ledger  # noqa: PLW0603 (one descriptor per process, opened on first use)
    if _ledger is None:
        _ledger = Ledger(Path(os.environ["PERDURE_CHAOS_LEDGER"]))
    return _ledger


async def step(ctx: Context | ObjectContext | WorkflowContext, name: str, tag: str) -> str:
    """A durable step whose every execution and every acknowledged result is in the ledger."""
    inv = ctx.request().id

    def execute() -> str:
        token = uuid.uuid4().hex
        ledger().append("exec", inv=inv, step=name, tag=tag, token=token)
        return token

    token: str = await ctx.run(name, execute)
    ledger().append("ack", inv=inv, step=name, tag=tag, token=token)
    return token


work = perdure.Service("Work")


@work.handler()
async def process(ctx: Context, job: dict[str, Any]) -> dict[str, Any]:
    """``steps`` steps with short durable sleeps between them; returns their tokens."""
    tag = str(job["tag"])
    tokens = []
    for i in range(int(job["steps"])):
        tokens.append(await step(ctx, f"s{i}", tag))
        if job.get("sleep_ms"):
            await ctx.sleep(timedelta(milliseconds=int(job["sleep_ms"])))
    return {"tag": tag, "tokens": tokens}


@work.handler()
async def chain(ctx: Context, job: dict[str, Any]) -> list[str]:
    """A call chain ``depth`` deep: each level runs a step, then calls the next level."""
    tag, depth = str(job["tag"]), int(job["depth"])
    await step(ctx, "hop", f"{tag}/{depth}")
    here = [f"{tag}/{depth}"]
    if depth == 0:
        return here
    below = await ctx.service(chain).request({"tag": tag, "depth": depth - 1})
    return here + below


@work.handler()
async def approval(ctx: Context, job: dict[str, Any]) -> str:
    """Waits on an awakeable the runner resolves through the ingress (it finds the id here)."""
    tag = str(job["tag"])
    awakeable_id, value = ctx.awakeable(type_hint=str)
    await step(ctx, "publish", tag)
    ledger().append("awakeable", inv=ctx.request().id, tag=tag, id=awakeable_id)
    return f"{tag}:{await value}"


@work.handler()
async def ping(ctx: Context) -> str:
    """The probe: a round trip through the deployment with nothing durable in it."""
    return "pong"


counter = perdure.VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, job: dict[str, Any]) -> int:
    await step(ctx, "add", str(job["tag"]))
    total = (await ctx.get("total", type_hint=int) or 0) + int(job["delta"])
    ctx.set("total", total)
    ctx.set("count", (await ctx.get("count", type_hint=int) or 0) + 1)
    return total


@counter.handler(kind="shared")
async def get(ctx: ObjectSharedContext) -> dict[str, int]:
    total = await ctx.get("total", type_hint=int) or 0
    count = await ctx.get("count", type_hint=int) or 0
    return {"total": total, "count": count}


signup = perdure.Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, job: dict[str, Any]) -> str:
    tag = str(job["tag"])
    await step(ctx, "register", tag)
    clicked = await ctx.promise("link", type_hint=str).value()
    await step(ctx, "activate", tag)
    return f"{tag}:{clicked}"


@signup.handler()
async def click(ctx: WorkflowSharedContext, value: str) -> None:
    await ctx.promise("link", type_hint=str).resolve(value)


app = perdure.app([work, counter, signup])


async def _serve_with_goaway(port: int, goaway_after: int) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_max_requests = goaway_after  # then hypercorn sends GOAWAY (code 0)
    config.graceful_timeout = 2.0
    config.accesslog = None
    asgi: Any = app
    await serve(asgi, config)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.services")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ledger", type=Path, required=True)
    parser.add_argument("--goaway-after", type=int, default=0)
    args = parser.parse_args()
    os.environ["PERDURE_CHAOS_LEDGER"] = str(args.ledger)
    if args.goaway_after:
        asyncio.run(_serve_with_goaway(args.port, args.goaway_after))
    else:
        perdure.serve(app, host="127.0.0.1", port=args.port, grace_period=timedelta(seconds=2))


if __name__ == "__main__":
    main()
