"""Reminder with a delayed send: scheduling returns at once; the reminder fires later, durably
(a server restart in between does not lose it).

    curl localhost:8080/Reminders/schedule --json '{"user": "ann", "text": "tea", "seconds": 5}'
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext


@dataclass
class Reminder:
    user: str
    text: str
    seconds: float


inbox = perdure.VirtualObject("Inbox")


@inbox.handler()
async def deliver(ctx: ObjectContext, text: str) -> None:
    messages = (await ctx.get("messages", type_hint=list[str])) or []
    ctx.set("messages", [*messages, text])


@inbox.handler(kind="shared")
async def messages(ctx: ObjectSharedContext) -> list[str]:
    return (await ctx.get("messages", type_hint=list[str])) or []


reminders = perdure.Service("Reminders")


@reminders.handler()
async def schedule(ctx: Context, reminder: Reminder) -> str:
    handle = ctx.object_send(deliver, reminder.user).send(
        f"reminder: {reminder.text}", delay=timedelta(seconds=reminder.seconds)
    )
    return await handle.invocation_id()


app = perdure.app([inbox, reminders])

if __name__ == "__main__":
    perdure.serve(app, port=int(os.environ.get("PORT", "9080")))
