"""Fan-out to objects: one request updates many virtual objects in parallel and gathers their
answers; each object key still runs its own calls one at a time.

    curl localhost:8080/Broadcast/send --json '{"sensors": ["a", "b", "c"], "reading": 7}'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import perdure
from perdure import Context, ObjectContext


@dataclass
class Broadcast:
    sensors: list[str]
    reading: int


sensor = perdure.VirtualObject("Sensor")


@sensor.handler()
async def record(ctx: ObjectContext, reading: int) -> int:
    total = ((await ctx.get("total", type_hint=int)) or 0) + reading
    ctx.set("total", total)
    return total


broadcast = perdure.Service("Broadcast")


@broadcast.handler()
async def send(ctx: Context, message: Broadcast) -> dict[str, int]:
    calls = [ctx.object(record, name).request(message.reading) for name in message.sensors]
    totals = await perdure.gather(*calls)
    return dict(zip(message.sensors, totals, strict=True))


app = perdure.app([sensor, broadcast])

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
