"""Keeps bench/ from rotting: the load generator counts what happened (unit tests on a mock
transport), every case runs briefly against perdure's server with the bench deployment and is
answered and verified, every stack starts and answers, and ``python -m bench`` produces its table
(with ratios to the official stack and CPU per invocation) and JSON.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench import targets
from bench.cases import CASES
from bench.http1 import LeanClient
from bench.loadgen import (
    CheckFailed,
    LoadConfig,
    LoadResult,
    run_load,
    run_load_processes,
)

# ---------------------------------------------------------------------------------------------
# The load generator, without a network
# ---------------------------------------------------------------------------------------------


def _every_third_fails(request: httpx.Request) -> httpx.Response:
    n = int(request.url.path.rsplit("/", 1)[1])
    return httpx.Response(500 if n % 3 == 0 else 200, json=n)


async def _check_ok(client: httpx.AsyncClient, i: int) -> None:
    resp = await client.get(f"/item/{i}")
    if resp.status_code != 200:
        raise CheckFailed(f"HTTP {resp.status_code}")


def _load(config: LoadConfig, handler=_every_third_fails) -> LoadResult:  # type: ignore[no-untyped-def]
    transport = httpx.MockTransport(handler)
    return asyncio.run(run_load("http://bench.invalid", _check_ok, config, transport=transport))


def test_closed_loop_counts_successes_and_failures_by_reason() -> None:
    result = _load(LoadConfig(concurrency=4, requests=30, duration=10))
    # requests 0..29: 0, 3, ..., 27 fail (10 of them)
    assert (result.ok, result.failed) == (20, 10)
    assert result.failures == {"HTTP 500": 10}
    assert len(result.latencies) == 20
    assert result.throughput == pytest.approx(20 / result.elapsed)


def test_errors_raised_by_the_transport_are_failures_not_crashes() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    result = _load(LoadConfig(concurrency=2, requests=5, duration=10), refuse)
    assert (result.ok, result.failed) == (0, 5)
    assert result.failures == {"ConnectError": 5}


def test_duration_bounds_a_run_without_a_request_count() -> None:
    async def slow(client: httpx.AsyncClient, i: int) -> None:
        await asyncio.sleep(0.01)

    started = time.monotonic()
    result = asyncio.run(run_load("http://bench.invalid", slow, LoadConfig(2, None, 0.3)))
    assert 0.3 <= time.monotonic() - started < 2.0
    assert result.failed == 0 and 20 <= result.ok <= 62  # 2 workers, ~10 ms each, 0.3 s


def test_open_loop_issues_at_the_given_rate() -> None:
    result = _load(LoadConfig(concurrency=8, requests=None, duration=0.5, rate=40))
    # due times 0, 25 ms, ..., 475 ms: 20 requests, a third of them failing
    assert result.issued == 20
    assert result.elapsed >= 0.45


def test_percentiles_use_nearest_rank() -> None:
    result = LoadResult(ok=100, latencies=[i / 1000 for i in range(100, 0, -1)])
    assert result.percentile(50) == 0.050
    assert result.percentile(99) == 0.099
    assert result.percentile(100) == 0.100


def test_bad_bounds_are_rejected() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        LoadConfig(concurrency=0)
    with pytest.raises(ValueError, match="rate"):
        LoadConfig(rate=0)


def test_lean_client_reads_length_and_chunked_bodies_and_reconnects_after_close() -> None:
    """The load generator's HTTP/1.1 client against a hand-written server: a content-length
    answer, a chunked one (split across writes) on the same connection, then one that closes the
    connection, after which the next request opens a new one."""
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n41",
        b"HTTP/1.1 201 Created\r\ntransfer-encoding: chunked\r\n\r\n1\r\n4\r\n",
        b"1;ext=1\r\n2\r\n0\r\n\r\n",
        b"HTTP/1.1 404 Not Found\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope",
    ]
    connections: list[list[bytes]] = []

    async def scenario() -> list[tuple[int, str]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen: list[bytes] = []
            connections.append(seen)
            try:
                while len(seen) < 3:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                    seen.append(head.split(b" ")[1] + await reader.readexactly(length))
                    if len(connections) > 1:
                        writer.write(answers[0])
                    elif len(seen) == 2:
                        writer.write(answers[1])
                        await writer.drain()
                        await asyncio.sleep(0.05)
                        writer.write(answers[2])
                    else:
                        writer.write(answers[0] if len(seen) == 1 else answers[3])
                    await writer.drain()
            except asyncio.IncompleteReadError:
                pass  # the client closed its connection
            finally:
                writer.close()
                await writer.wait_closed()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with LeanClient(f"http://127.0.0.1:{port}") as client:
            got = []
            for path in ("/a", "/b", "/c", "/d"):
                resp = await client.post(path, json={"n": 1}, headers={"x-test": "1"})
                got.append((resp.status_code, resp.text))
        server.close()
        await server.wait_closed()
        return got

    got = asyncio.run(scenario())
    assert got == [(200, "41"), (201, "42"), (404, "nope"), (200, "41")]
    assert [len(c) for c in connections] == [3, 1]
    assert connections[0][0] == b'/a{"n": 1}'


# ---------------------------------------------------------------------------------------------
# Every case against perdure's server
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def perdure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[targets.Target]:
    tmp = tmp_path_factory.mktemp("bench")
    with targets.start(targets.STACKS["perdure-official-sdk"], tmp) as target:
        yield target


@pytest.mark.interop
@pytest.mark.parametrize("name", list(CASES))
def test_case_runs_and_is_counted_on_perdure(perdure: targets.Target, name: str) -> None:
    case = CASES[name]
    tag = f"smoke-{name}"
    config = LoadConfig(concurrency=4, requests=12, duration=20)
    result = asyncio.run(run_load(perdure.ingress, case.make(tag), config))
    assert result.failures == {}
    assert (result.ok, result.failed) == (12, 0)
    if case.verify is not None:

        async def verify() -> str | None:
            async with httpx.AsyncClient(base_url=perdure.ingress, timeout=30) as client:
                assert case.verify is not None
                return await case.verify(client, tag, result)

        assert asyncio.run(verify()) is None


@pytest.mark.interop
def test_a_run_split_over_processes_issues_every_request_number_once(
    perdure: targets.Target,
) -> None:
    """Three generator processes, 5 workers, 20 requests: each number 0..19 is issued by exactly
    one process (the noop answer is the number itself, so each answer is checked), and the
    generators' CPU time is counted."""
    noop = CASES["noop"].make("split")
    result = run_load_processes(perdure.ingress, noop, LoadConfig(5, 20, 20), 3)
    assert (result.ok, result.failed) == (20, 0)
    assert result.cpu > 0 and len(result.latencies) == 20


@pytest.mark.interop
def test_verification_notices_a_miscount(perdure: targets.Target) -> None:
    """The hot-key check compares the server's counter with the load generator's success count."""
    case = CASES["hot-key"]
    result = asyncio.run(run_load(perdure.ingress, case.make("miscount"), LoadConfig(2, 4, 20)))
    assert result.ok == 4
    result.ok = 5  # as if the load generator had counted one success too many

    async def verify() -> str | None:
        async with httpx.AsyncClient(base_url=perdure.ingress, timeout=30) as client:
            assert case.verify is not None
            return await case.verify(client, "miscount", result)

    assert asyncio.run(verify()) == "counters hold 4 adds, the load generator counted 5 successes"


@pytest.mark.interop
def test_bench_command_runs_every_stack_with_ratios_and_cpu_per_invocation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """All five stacks in one run (about 15 s): each starts, answers every request correctly,
    and gets its ratio to the official stack and its CPU cost per invocation."""
    from bench.__main__ import main

    out = tmp_path / "result.json"
    argv = ["--cases", "noop,noop-c1,hot-key", "--requests", "8", "--warmup", "2",
            "--concurrency", "2", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "noop-c1" in printed and "hot-key" in printed and "p99 ms" in printed
    assert "throughput vs the official stack" in printed
    report = json.loads(out.read_text())
    assert report["machine"]["cpus"] >= 1
    stacks = list(targets.STACKS)
    assert [(r["case"], r["stack"], r["ok"]) for r in report["results"]] == [
        (case, stack, 8) for stack in stacks for case in ("noop", "noop-c1", "hot-key")
    ]
    by_stack = {r["stack"]: r for r in report["results"] if r["case"] == "noop"}
    assert set(by_stack["perdure"]["cpu_s"]) == {"server", "deployment", "loadgen"}
    assert set(by_stack["dev"]["cpu_s"]) == {"server", "loadgen"}  # one process
    assert (by_stack["dev"]["server"], by_stack["official-perdure-sdk"]["sdk"]) == (
        "dev",
        "perdure",
    )
    assert by_stack["perdure"]["cpu_ms_per_invocation"]["server"] >= 0


def test_bench_command_rejects_unknown_cases(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.__main__ import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--cases", "noop,nope"])
    assert exit_info.value.code == 2
    assert "unknown case nope" in capsys.readouterr().err
