"""A deployment run with ``perdure.serve`` in its own process, for the SIGTERM scenarios:

    python -m tests.scenarios.shutdown_service PORT GRACE_SECONDS MARKS_DIR

``Shutdown/work`` runs one durable step that appends a line to ``MARKS_DIR/<name>`` when an
attempt of it starts; the first attempt then takes ``seconds``, later ones finish at once.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

import perdure
from perdure import Context

MARKS = Path(".")
shutdown = perdure.Service("Shutdown")


@shutdown.handler()
async def work(ctx: Context, job: dict[str, object]) -> str:
    name = str(job["name"])
    seconds = float(str(job["seconds"]))

    async def step() -> int:
        marks = MARKS / name
        with marks.open("a") as f:
            f.write("started\n")
        attempts = len(marks.read_text().splitlines())
        if attempts == 1:
            await asyncio.sleep(seconds)
        return attempts

    attempts = await ctx.run("work", step)
    return f"step ran {attempts} time(s)"


app = perdure.app([shutdown])

if __name__ == "__main__":
    port, grace, MARKS = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])
    perdure.serve(app, host="127.0.0.1", port=port, grace_period=timedelta(seconds=grace))
