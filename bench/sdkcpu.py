"""CPU per noop invocation of a deployment alone: no server, no storage.

    python -m bench.sdkcpu                      # perdure's SDK, 3 x 3000 invocations, 16 in flight
    python -m bench.sdkcpu --sdk official --invocations 2000 --rounds 5
    python -m bench.sdkcpu --profile /tmp/sdk.raw  # py-spy of the deployment, hottest printed

Starts the bench deployment (bench/perdure_services.py on ``perdure.serve``, or bench/services.py
on hypercorn) and drives ``BenchNoop/echo`` invocations at it over one HTTP/2 connection with the
server's own client (perdure.server.invoker.h2) and the server's framing: Start + Input, read the
commands until End, half-close, read to the end; exactly what an attempt does. Prints the CPU
milliseconds per invocation of the deployment (from /proc, children included) and of this driver
(the server's HTTP/2 client side, a lower bound of what the server spends on the exchange).

CPU time is much less sensitive than throughput to other load on the machine: read this when the
cores are shared. Each round is one measurement; the best (lowest) round is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from bench.cpu import cpu_seconds
from bench.profiling import recording, render
from bench.targets import deployment
from perdure.protocol import Frame, FrameDecoder, InvocationId, MessageType
from perdure.protocol import messages as m
from perdure.protocol.versions import invocation_content_type
from perdure.server.invoker.h2 import H2Pool

CONTENT_TYPE = invocation_content_type(6)


def _payload(invocation_id: InvocationId, n: int) -> bytes:
    start = m.StartMessage(
        id=invocation_id.to_bytes(), debug_id=str(invocation_id), known_entries=1,
        random_seed=invocation_id.random_seed(),
    )  # fmt: skip
    value = m.Value(content=str(n).encode())
    return Frame.of(start).to_bytes() + Frame.of(m.InputCommand(value=value)).to_bytes()


async def _one(pool: H2Pool, host: str, port: int, n: int) -> None:
    invocation_id = InvocationId.new()
    headers = [("content-type", CONTENT_TYPE), ("accept", CONTENT_TYPE),
               ("x-restate-invocation-id", str(invocation_id))]  # fmt: skip
    stream = await pool.request(host, port, "POST", "/invoke/BenchNoop/echo", headers)
    await stream.send(_payload(invocation_id, n))
    status, _ = await stream.response()
    if status != 200:
        raise RuntimeError(f"the deployment answered HTTP {status}")
    decoder = FrameDecoder()
    output: bytes | None = None
    while (chunk := await stream.read()) is not None:
        for frame in decoder.feed(chunk):
            if frame.type is MessageType.OUTPUT:
                message = frame.message()
                assert isinstance(message, m.OutputCommand)
                output = message.value.content
            elif frame.type is MessageType.END:
                await stream.close_request()
    if output != str(n).encode():
        raise RuntimeError(f"wrong output for {n}: {output!r}")


async def _round(url: str, invocations: int, concurrency: int) -> float:
    """Drive ``invocations``; return the driver's CPU seconds."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    pool = H2Pool()
    try:
        await _one(pool, host, int(port), 0)  # the connection is open before measuring
        counter = iter(range(invocations))
        started = time.process_time()

        async def worker() -> None:
            for n in counter:
                await _one(pool, host, int(port), n)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.process_time() - started
    finally:
        pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdkcpu", description=__doc__)
    parser.add_argument("--sdk", choices=("perdure", "official"), default="perdure")
    parser.add_argument("--invocations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--profile", type=Path, metavar="RAW",
        help="sample the deployment with py-spy during the rounds into RAW (collapsed stacks) "
        "and print its hottest functions (the profiler's own cost inflates the CPU figures)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="perdure-sdkcpu-") as tmp,
        deployment(Path(tmp), sdk=args.sdk) as dep,
        contextlib.ExitStack() as profiling,
    ):
        asyncio.run(_round(dep.url, 200, args.concurrency))  # warm-up
        if args.profile is not None:
            profiling.enter_context(recording(dep.pid, args.profile))
        for r in range(args.rounds):
            before, wall = cpu_seconds(dep.pid), time.monotonic()
            driver = asyncio.run(_round(dep.url, args.invocations, args.concurrency))
            after, wall = cpu_seconds(dep.pid), time.monotonic() - wall
            if before is None or after is None:
                print("error: cannot read the deployment's CPU time (/proc)", file=sys.stderr)
                return 1
            sdk_ms = 1000 * (after - before) / args.invocations
            driver_ms = 1000 * driver / args.invocations
            results.append((sdk_ms, driver_ms))
            print(
                f"round {r + 1}: {args.sdk} SDK {sdk_ms:.3f} ms/inv, driver (the server's h2 "
                f"client) {driver_ms:.3f} ms/inv, {args.invocations / wall:.0f} inv/s"
            )
    if args.profile is not None:
        print(render(args.profile, top=25))
    sdk_best, driver_best = min(s for s, _ in results), min(d for _, d in results)
    print(f"best: {args.sdk} SDK {sdk_best:.3f} ms/inv; driver {driver_best:.3f} ms/inv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
