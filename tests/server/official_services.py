"""Services written with the OFFICIAL Python SDK (restate-sdk), run on perdure's server.

Side effects that tests count are appended, one line each, to files in the directory named by
the PERDURE_EFFECTS environment variable (set by the test before the deployment starts).
"""

import os
from datetime import timedelta
from pathlib import Path

import restate
from restate import TerminalError


def record(kind: str, line: str) -> None:
    directory = Path(os.environ.get("PERDURE_EFFECTS", "/tmp"))
    with open(directory / f"{kind}.log", "a") as f:
        f.write(line + "\n")


greeter = restate.Service("Greeter")


@greeter.handler()
async def greet(ctx: restate.Context, name: str) -> str:
    return f"Hello {name}"


@greeter.handler()
async def fail(ctx: restate.Context, message: str) -> str:
    raise TerminalError(message, status_code=422)


counter = restate.VirtualObject("Counter")


@counter.handler()
async def add(ctx: restate.ObjectContext, n: int) -> int:
    value = (await ctx.get("count") or 0) + n
    ctx.set("count", value)
    return value


@counter.handler(kind="shared")
async def get(ctx: restate.ObjectSharedContext) -> int:
    return await ctx.get("count") or 0


@counter.handler()
async def append(ctx: restate.ObjectContext, item: str) -> list[str]:
    """Read, wait, write: interleaved runs of this handler would lose items."""
    items = await ctx.get("items") or []
    await ctx.sleep(timedelta(milliseconds=20))
    items.append(item)
    ctx.set("items", items)
    return items


@counter.handler(kind="shared")
async def items(ctx: restate.ObjectSharedContext) -> list[str]:
    return await ctx.get("items") or []


caller = restate.Service("Caller")


@caller.handler()
async def call_greeter(ctx: restate.Context, name: str) -> str:
    greeting = await ctx.service_call(greet, arg=name)
    return f"{greeting}!"


@caller.handler()
async def call_failing(ctx: restate.Context, message: str) -> str:
    try:
        return await ctx.service_call(fail, arg=message)
    except TerminalError as exc:
        return f"caught {exc.status_code}: {exc.message}"


@caller.handler()
async def send_add(ctx: restate.Context, key: str) -> str:
    ctx.object_send(add, key=key, arg=1)
    return "sent"


@caller.handler()
async def send_add_later(ctx: restate.Context, key: str) -> str:
    ctx.object_send(add, key=key, arg=10, send_delay=timedelta(milliseconds=500))
    return "scheduled"


@caller.handler()
async def idempotent_add(ctx: restate.Context, key: str) -> int:
    first = await ctx.object_call(add, key=key, arg=5, idempotency_key="once")
    second = await ctx.object_call(add, key=key, arg=5, idempotency_key="once")
    return first * 1000 + second


sleeper = restate.Service("Sleeper")


@sleeper.handler()
async def sleep(ctx: restate.Context, ms: int) -> str:
    await ctx.sleep(timedelta(milliseconds=ms))
    invocation = ctx.request().id
    await ctx.run("record", lambda: record("slept", invocation))
    return "slept"


runner = restate.Service("Runner")


@runner.handler()
async def three_steps(ctx: restate.Context, tag: str) -> list[str]:
    results = []
    for step in range(3):
        name = f"step{step}"

        def effect(name: str = name) -> str:
            record("steps", f"{tag}:{name}")
            return name

        results.append(await ctx.run(name, effect))
    return results


@runner.handler()
async def flaky(ctx: restate.Context, tag: str) -> str:
    """Fails twice (retryable), then succeeds: the run is retried by the SDK/server."""

    def attempt() -> str:
        record("flaky", tag)
        directory = Path(os.environ.get("PERDURE_EFFECTS", "/tmp"))
        lines = (directory / "flaky.log").read_text().splitlines()
        count = sum(1 for line in lines if line.strip() == tag)
        if count < 3:
            raise RuntimeError(f"transient failure {count}")
        return f"ok after {count}"

    return await ctx.run("flaky", attempt)


awaker = restate.Service("Awaker")


@awaker.handler()
async def wait(ctx: restate.Context, tag: str) -> str:
    awakeable_id, promise = ctx.awakeable()
    await ctx.run("publish", lambda: record(f"awakeable-{tag}", awakeable_id))
    value = await promise
    return f"woken with {value}"


signup = restate.Workflow("Signup")


@signup.main()
async def run(ctx: restate.WorkflowContext, email: str) -> str:
    ctx.set("email", email)
    secret = await ctx.promise("link").value()
    return f"verified {email} with {secret}"


@signup.handler()
async def click(ctx: restate.WorkflowSharedContext, secret: str) -> str:
    await ctx.promise("link").resolve(secret)
    return "clicked"


@signup.handler()
async def email(ctx: restate.WorkflowSharedContext) -> str:
    return await ctx.get("email") or ""


app = restate.app([greeter, counter, caller, sleeper, runner, awaker, signup])
