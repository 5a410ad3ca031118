"""perdure-SDK services for the ``--workers N`` tests: work on keyed objects whose keys land on
different workers, call chains that hop between them, and awakeables created on one worker and
resolved from another. Each durable step appends a line to ``$PERDURE_EFFECTS/steps.log`` (the
test counts executions, as the crash tests do)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import perdure
from perdure import Context, ObjectContext


def record(kind: str, line: str) -> None:
    directory = Path(os.environ.get("PERDURE_EFFECTS", "/tmp"))
    with open(directory / f"{kind}.log", "a") as f:
        f.write(line + "\n")


async def step(ctx: Context | ObjectContext, tag: str) -> str:
    """A durable step recorded when it executes ("exec") and when its result is journaled."""

    def execute() -> str:
        token = uuid.uuid4().hex
        record("exec", f"{tag} {token}")
        return token

    token: str = await ctx.run("step", execute)
    record("ack", f"{tag} {token}")
    return token


account = perdure.VirtualObject("Account")


@account.handler()
async def deposit(ctx: ObjectContext, amount: int) -> int:
    await step(ctx, f"deposit/{ctx.key()}/{ctx.request().id}")
    total = (await ctx.get("total", type_hint=int) or 0) + amount
    ctx.set("total", total)
    return total


@account.handler()
async def hop(ctx: ObjectContext, job: dict[str, Any]) -> list[str]:
    """Run a step here, then call the next key of ``keys`` (a chain across workers)."""
    tag, keys = str(job["tag"]), list(job["keys"])
    await step(ctx, f"hop/{tag}/{ctx.key()}")
    if not keys:
        return [ctx.key()]
    below: list[str] = await ctx.object(hop, keys[0]).request({"tag": tag, "keys": keys[1:]})
    return [ctx.key(), *below]


@account.handler()
async def wait(ctx: ObjectContext, tag: str) -> str:
    """Wait on an awakeable whose id it publishes in awakeables.log."""
    awakeable_id, value = ctx.awakeable(type_hint=str)
    await step(ctx, f"wait/{tag}")
    record("awakeables", f"{tag} {awakeable_id}")
    return f"{tag}:{await value}"


@account.handler()
async def resolve(ctx: ObjectContext, job: dict[str, str]) -> None:
    """Resolve another invocation's awakeable from a handler (a message to its partition)."""
    ctx.resolve_awakeable(job["id"], job["value"])


app = perdure.app([account])
