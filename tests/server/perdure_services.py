"""perdure-SDK services for crash tests on perdure's server.

Side effects are appended, one line each, to files in the directory named by PERDURE_EFFECTS
(set by the test before the deployment starts), so a test can count how often a step ran.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import perdure
from perdure import Context


def record(kind: str, line: str) -> None:
    directory = Path(os.environ.get("PERDURE_EFFECTS", "/tmp"))
    with open(directory / f"{kind}.log", "a") as f:
        f.write(line + "\n")


@dataclass
class StepPlan:
    tag: str
    step_seconds: float
    """How long the durable step takes (a crash test kills the server meanwhile)."""
    sleep_seconds: float
    """How long the handler sleeps after the step's result is journaled."""


stepper = perdure.Service("Stepper")


@stepper.handler()
async def slow_step(ctx: Context, plan: StepPlan) -> str:
    async def step() -> str:
        value = uuid.uuid4().hex  # differs per execution: shows which one was journaled
        record("started", f"{plan.tag}:{value}")
        await asyncio.sleep(plan.step_seconds)
        record("finished", f"{plan.tag}:{value}")
        return value

    value = await ctx.run("slow", step)
    record("journaled", f"{plan.tag}:{value}")  # the step's result is durable by now
    if plan.sleep_seconds:
        await ctx.sleep(timedelta(seconds=plan.sleep_seconds))
    return value


app = perdure.app([stepper])
