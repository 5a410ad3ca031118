#!/usr/bin/env python3
"""Record golden service-protocol V6 exchanges between the official Restate server
and the official Restate Python SDK.

Topology (all on 127.0.0.1, free ports):

    driver --HTTP--> restate-server (ingress / admin)
                          |  HTTP/1.1, request/response mode (registered with use_http_11)
                          v
                   recording proxy (in-process ASGI app on hypercorn)
                          |  HTTP/1.1 (httpx)
                          v
                   services.py (official SDK, hypercorn subprocess)

Everything the server sends to the deployment (discovery included) and everything
it gets back is recorded byte for byte ("via": "deployment"), as are the driver's
requests to the ingress/admin APIs and their answers ("via": "ingress").

Run with the project's venv (scripts/setup installs restate-sdk==1.2.0, hypercorn, httpx and
the official server into .ci/.tools):

    .venv/bin/python scripts/golden/record.py \
        [--restate-server PATH] [--out tests/protocol/fixtures/golden_v6.json]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from hypercorn.asyncio import serve
from hypercorn.config import Config

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))  # the tests' process helpers start the server and the SDK

from tests.support.official import RestateServer, find_restate_server, serve_asgi  # noqa: E402
from tests.support.processes import free_port  # noqa: E402

DEFAULT_OUT = REPO / "tests" / "protocol" / "fixtures" / "golden_v6.json"

# Headers that describe one HTTP hop; never forwarded by the proxy.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "host",
    "content-length",
}

STEP_TIMEOUT = 20.0  # seconds, any single wait
TOTAL_TIMEOUT = 60.0  # seconds, the whole scenario run


def log(msg: str) -> None:
    print(f"[record {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def lower_headers(raw: list[tuple[bytes, bytes]]) -> list[list[str]]:
    return [[k.decode("latin-1").lower(), v.decode("latin-1")] for k, v in raw]


# --------------------------------------------------------------------------- recording


class Recorder:
    """Collects exchanges; each one is keyed by the order in which its request started."""

    def __init__(self) -> None:
        self._seq = 0
        self._items: list[tuple[int, dict[str, Any]]] = []

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, seq: int, exchange: dict[str, Any]) -> None:
        self._items.append((seq, exchange))

    def exchanges(self) -> list[dict[str, Any]]:
        return [e for _, e in sorted(self._items, key=lambda item: item[0])]


def exchange(
    *,
    via: str,
    method: str,
    path: str,
    req_headers: list[list[str]],
    req_body: bytes,
    status: int,
    resp_headers: list[list[str]],
    resp_body: bytes,
) -> dict[str, Any]:
    return {
        "via": via,
        "method": method,
        "path": path,
        "request_headers": req_headers,
        "request_body": b64(req_body),
        "status": status,
        "response_headers": resp_headers,
        "response_body": b64(resp_body),
    }


def make_proxy(target: str, recorder: Recorder, client: httpx.AsyncClient):
    """ASGI app: buffer the request, forward it over HTTP/1.1, record, answer."""

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        seq = recorder.next_seq()
        method = scope["method"]
        path = scope.get("raw_path") or scope["path"].encode()
        path_str = path.decode("latin-1")
        if scope.get("query_string"):
            path_str += "?" + scope["query_string"].decode("latin-1")
        req_headers = lower_headers(list(scope["headers"]))
        body = bytearray()
        while True:
            msg = await receive()
            if msg["type"] == "http.request":
                body += msg.get("body", b"")
                if not msg.get("more_body", False):
                    break
            elif msg["type"] == "http.disconnect":
                return
        fwd = [(k, v) for k, v in req_headers if k not in HOP_BY_HOP]
        try:
            request = client.build_request(
                method, target + path_str, headers=fwd, content=bytes(body)
            )
            response = await client.send(request, stream=True)
            try:
                chunks = [chunk async for chunk in response.aiter_raw()]
            finally:
                await response.aclose()
        except httpx.HTTPError as e:
            log(f"proxy: forwarding {method} {path_str} failed: {e!r}")
            await send({"type": "http.response.start", "status": 502, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        resp_body = b"".join(chunks)
        resp_headers = lower_headers(list(response.headers.raw))
        recorder.add(
            seq,
            exchange(
                via="deployment",
                method=method,
                path=path_str,
                req_headers=req_headers,
                req_body=bytes(body),
                status=response.status_code,
                resp_headers=resp_headers,
                resp_body=resp_body,
            ),
        )
        out = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in resp_headers
            if k not in HOP_BY_HOP
        ]
        out.append((b"content-length", str(len(resp_body)).encode()))
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        await send({"type": "http.response.body", "body": resp_body})

    return app


def server_version(binary: Path) -> str:
    out = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    # "restate-server 1.7.12"
    return out.strip().split()[-1] if out.strip() else "unknown"


# --------------------------------------------------------------------------- driver


class Driver:
    def __init__(self, recorder: Recorder, ingress: str, admin: str) -> None:
        self.recorder = recorder
        self.ingress = ingress
        self.admin = admin
        # identity encoding keeps recorded bodies raw
        self.client = httpx.AsyncClient(
            headers={"accept-encoding": "identity"}, timeout=httpx.Timeout(STEP_TIMEOUT)
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        admin: bool = False,
        json_body: Any = None,
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        record: bool = True,
        expect: set[int] | None = None,
    ) -> httpx.Response:
        base = self.admin if admin else self.ingress
        hdrs = dict(headers or {})
        content = raw_body
        if json_body is not None:
            content = json.dumps(json_body).encode()
            hdrs.setdefault("content-type", "application/json")
        seq = self.recorder.next_seq()
        req = self.client.build_request(method, base + path, headers=hdrs, content=content)
        resp = await self.client.send(req)
        if record:
            self.recorder.add(
                seq,
                exchange(
                    via="ingress",
                    method=method,
                    path=path,
                    req_headers=lower_headers(list(req.headers.raw)),
                    req_body=content or b"",
                    status=resp.status_code,
                    resp_headers=lower_headers(list(resp.headers.raw)),
                    resp_body=resp.content,
                ),
            )
        log(f"{method} {path} -> {resp.status_code} {resp.content[:120]!r}")
        if expect is not None and resp.status_code not in expect:
            raise RuntimeError(
                f"{method} {path}: unexpected status {resp.status_code}: {resp.text}"
            )
        return resp

    async def query(self, sql: str) -> list[dict[str, Any]]:
        resp = await self.client.post(
            self.admin + "/query", json={"query": sql}, headers={"accept": "application/json"}
        )
        resp.raise_for_status()
        return resp.json().get("rows", [])

    async def poll(
        self, what: str, fn: Callable[[], Awaitable[Any]], timeout: float = STEP_TIMEOUT
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await fn()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.1)

    async def status_of(self, inv_id: str) -> str | None:
        rows = await self.query(f"SELECT status FROM sys_invocation WHERE id = '{inv_id}'")
        return rows[0]["status"] if rows else None

    async def send(self, path: str, body: Any = None, query: str = "", headers=None) -> str:
        resp = await self.request(
            "POST", f"{path}/send{query}", json_body=body, headers=headers, expect={202}
        )
        return resp.json()["invocationId"]

    async def holder_value(self, key: str) -> str:
        """Poll Holder/<key>/get until the awakeable id is set; only the last poll is recorded."""

        async def attempt():
            resp = await self.request("POST", f"/Holder/{key}/get", record=False, expect={200})
            value = json.loads(resp.content) if resp.content else None
            return value

        value = await self.poll(f"awakeable id in Holder/{key}", attempt)
        await self.request("POST", f"/Holder/{key}/get", expect={200})
        return value


async def register(driver: Driver, proxy_url: str) -> None:
    await driver.request(
        "POST",
        "/deployments",
        admin=True,
        json_body={"uri": proxy_url, "use_http_11": True},
        expect={200, 201},
    )

    async def services_visible():
        resp = await driver.client.get(driver.ingress + "/restate/health")
        return resp.status_code == 200 and "Signup" in resp.json().get("services", [])

    await driver.poll("services in ingress", services_visible)


async def plain_service(d: Driver) -> None:
    """Value output, terminal failure with metadata, retries, sleep, runs."""
    await d.request("POST", "/Greeter/greet", json_body="Ann", expect={200})
    await d.request("POST", "/Greeter/fail", json_body="Ann", expect={418})
    await d.request("POST", "/Greeter/flaky", json_body="Fay", expect={200})
    await d.request("POST", "/Greeter/flaky_delay", json_body="Del", expect={200})
    await d.request("POST", "/Greeter/sleepy", json_body=100, expect={200})
    await d.request("POST", "/Greeter/runs", json_body=21, expect={200})
    await d.request("POST", "/Greeter/run_retry", json_body="Rex", expect={200})


async def objects_and_calls(d: Driver) -> None:
    """Eager state (second call has a non-empty state_map), lazy state, calls from handlers."""
    for obj in ("Counter", "LazyCounter"):
        await d.request("POST", f"/{obj}/c1/add", json_body=1, expect={200})
        await d.request("POST", f"/{obj}/c1/add", json_body=2, expect={200})
        await d.request("POST", f"/{obj}/c1/reset", expect={200})

    await d.request("POST", "/Greeter/caller", json_body="Bob", expect={200})
    await d.request("POST", "/Greeter/attacher", json_body="Zed", expect={200})


async def ingress_features(d: Driver) -> None:
    """Idempotency key, send, delayed send, attach / output."""
    idem = {"idempotency-key": "idem-ingress-1"}
    first = await d.request("POST", "/Greeter/greet", json_body="Ida", headers=idem, expect={200})
    await d.request("POST", "/Greeter/greet", json_body="Ida", headers=idem, expect={200})
    inv = first.headers["x-restate-id"]
    await d.request("GET", f"/restate/invocation/{inv}/attach", expect={200})
    await d.request("GET", f"/restate/invocation/{inv}/output", expect={200})
    await d.request("GET", "/restate/invocation/Greeter/greet/idem-ingress-1/attach", expect={200})
    sent = await d.send("/Greeter/greet", "Sam")
    delayed = await d.send("/Greeter/greet", "Dee", query="?delay=500ms")
    await d.request("GET", f"/restate/invocation/{sent}/attach", expect={200})
    await d.request("GET", f"/restate/invocation/{delayed}/attach", expect={200})


async def awakeables_and_signals(d: Driver) -> None:
    """Awakeables completed by the ingress and by a handler; named signals."""
    aw1 = await d.send("/Waiter/wait_awakeable", "aw1")
    aw2 = await d.send("/Waiter/wait_awakeable", "aw2")
    id1 = await d.holder_value("aw1")
    id2 = await d.holder_value("aw2")
    await d.request(
        "POST", f"/restate/awakeables/{id1}/resolve", json_body="resolved-by-ingress", expect={202}
    )
    await d.request(
        "POST",
        f"/restate/awakeables/{id2}/reject",
        raw_body=b"rejected-by-ingress",
        headers={"content-type": "text/plain"},
        expect={202},
    )
    await d.request("GET", f"/restate/invocation/{aw1}/attach", expect={200})
    await d.request("GET", f"/restate/invocation/{aw2}/attach", expect={500})

    # completed by another handler (CompleteAwakeable)
    aw3 = await d.send("/Waiter/wait_awakeable", "aw3")
    aw4 = await d.send("/Waiter/wait_awakeable", "aw4")
    id3 = await d.holder_value("aw3")
    id4 = await d.holder_value("aw4")
    await d.request(
        "POST",
        "/Waiter/complete_awakeables",
        json_body={"resolve": id3, "reject": id4},
        expect={200},
    )
    await d.request("GET", f"/restate/invocation/{aw3}/attach", expect={200})
    await d.request("GET", f"/restate/invocation/{aw4}/attach", expect={400})

    # named signals sent by a handler (SendSignal by name)
    waiting = await d.send("/Waiter/wait_signal")
    await d.request("POST", "/Waiter/send_signals", json_body=waiting, expect={200})
    await d.request("GET", f"/restate/invocation/{waiting}/attach", expect={200})


async def cancellation(d: Driver) -> None:
    """Admin cancel (SignalNotification idx 1) and ctx.cancel_invocation (SendSignal idx 1)."""
    blocked = await d.send("/Waiter/block")
    await d.poll(f"{blocked} suspended", lambda: _is(d, blocked, "suspended"))
    await d.request("PATCH", f"/invocations/{blocked}/cancel", admin=True, expect={200, 202})
    await d.request("GET", f"/restate/invocation/{blocked}/attach", expect={409})

    await d.request("POST", "/Greeter/canceller", expect={200})


async def workflow(d: Driver) -> None:
    """Workflow run + shared handlers on promises, attach / output by workflow key."""
    await d.send("/Signup/wf1/run", "Wes")
    await d.request("POST", "/Signup/wf1/peek", expect={200})
    await d.request("POST", "/Signup/wf1/approve", json_body="yes", expect={200})
    await d.request("POST", "/Signup/wf1/approve", json_body="again", expect={200})
    await d.request("POST", "/Signup/wf1/reject_second", expect={200})
    await d.request("GET", "/restate/workflow/Signup/wf1/attach", expect={200})
    await d.request("GET", "/restate/workflow/Signup/wf1/output", expect={200})
    await d.request("POST", "/Signup/wf1/peek", expect={200})


SCENARIOS = (
    plain_service,
    objects_and_calls,
    ingress_features,
    awakeables_and_signals,
    cancellation,
    workflow,
)


async def scenarios(d: Driver) -> None:
    for scenario in SCENARIOS:
        log(f"-- {scenario.__name__}")
        await scenario(d)


async def _is(d: Driver, inv_id: str, status: str) -> bool:
    return (await d.status_of(inv_id)) == status


async def wait_all_completed(d: Driver) -> None:
    async def none_pending():
        rows = await d.query(
            "SELECT id, target, status FROM sys_invocation WHERE status != 'completed'"
        )
        if rows:
            none_pending.last = rows  # type: ignore[attr-defined]
        return not rows

    try:
        await d.poll("all invocations completed", none_pending)
    except TimeoutError as e:
        pending = getattr(none_pending, "last", None)
        raise TimeoutError(f"invocations still pending: {pending}") from e


def split_frames(body: bytes) -> list[int]:
    """Message type ids of a framed body (8-byte header: u16 type, u16 flags, u32 length)."""
    types, pos = [], 0
    while pos < len(body):
        if pos + 8 > len(body):
            raise ValueError("truncated frame header")
        msg_type, _flags, length = struct.unpack(">HHI", body[pos : pos + 8])
        pos += 8 + length
        if pos > len(body):
            raise ValueError("truncated frame payload")
        types.append(msg_type)
    return types


def check_framing(exchanges: list[dict[str, Any]]) -> None:
    """Every recorded attempt starts with StartMessage and ends with End/Suspension/Error."""
    for ex in exchanges:
        if ex["via"] != "deployment" or "/invoke/" not in ex["path"]:
            continue
        req = split_frames(base64.b64decode(ex["request_body"]))
        resp = split_frames(base64.b64decode(ex["response_body"]))
        if not req or req[0] != 0x0000:
            raise ValueError(f"{ex['path']}: request does not start with StartMessage: {req}")
        if not resp or resp[-1] not in (0x0001, 0x0002, 0x0003):
            raise ValueError(
                f"{ex['path']}: response does not end with End/Suspension/Error: {resp}"
            )


# --------------------------------------------------------------------------- main


async def wait_tcp(port: int, what: str) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError as e:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not come up on port {port}") from e
            await asyncio.sleep(0.05)


async def run(binary: Path, tmp: Path) -> dict[str, Any]:
    versions = {
        "restate_server": server_version(binary),
        "restate_sdk": importlib.metadata.version("restate-sdk"),
    }
    log(f"restate-server {binary} ({versions['restate_server']})")
    log(f"restate-sdk {versions['restate_sdk']}")
    recorder = Recorder()
    proxy_port = free_port()
    with contextlib.ExitStack() as stack:
        # 1. the SDK app; 2. the recording proxy in front of it; 3. the official server
        sdk_url = stack.enter_context(serve_asgi("services:app", tmp, cwd=HERE))
        proxy_client = httpx.AsyncClient(http1=True, http2=False, timeout=httpx.Timeout(60.0))
        hc = Config()
        hc.bind = [f"127.0.0.1:{proxy_port}"]
        hc.accesslog = None
        hc.errorlog = None
        hc.include_server_header = False
        proxy_stop = asyncio.Event()
        proxy_task = asyncio.create_task(
            serve(make_proxy(sdk_url, recorder, proxy_client), hc, shutdown_trigger=proxy_stop.wait)
        )
        driver: Driver | None = None
        try:
            await wait_tcp(proxy_port, "recording proxy")
            restate = stack.enter_context(RestateServer.start(tmp))
            # 4. register + drive
            driver = Driver(recorder, restate.ingress, restate.admin)
            await register(driver, f"http://127.0.0.1:{proxy_port}")
            await asyncio.wait_for(scenarios(driver), TOTAL_TIMEOUT)
            await wait_all_completed(driver)
            await asyncio.sleep(0.2)  # let the proxy record the last responses
        finally:
            if driver is not None:
                await driver.close()
            proxy_stop.set()
            try:
                await asyncio.wait_for(proxy_task, 10)
            except (TimeoutError, Exception) as e:
                log(f"proxy shutdown: {e!r}")
                proxy_task.cancel()
            await proxy_client.aclose()

    return {"recorded_with": versions, "exchanges": recorder.exchanges()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--restate-server", help="path of the restate-server binary")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="fixture file to write")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (logs, data)")
    args = parser.parse_args(argv)

    out = Path(args.out)
    if not out.is_absolute():
        out = REPO / out

    if args.restate_server:
        os.environ["PERDURE_RESTATE_SERVER"] = args.restate_server
    binary = find_restate_server()
    if binary is None or not binary.is_file():
        log("restate-server not found: run scripts/setup, or pass --restate-server PATH")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="perdure-golden-"))

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.monotonic()
    ok = False
    try:
        fixture = asyncio.run(run(binary, tmp))
        check_framing(fixture["exchanges"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(fixture, indent=1) + "\n")
        n_dep = sum(1 for e in fixture["exchanges"] if e["via"] == "deployment")
        log(
            f"wrote {out}: {len(fixture['exchanges'])} exchanges ({n_dep} deployment) "
            f"in {time.monotonic() - started:.1f}s"
        )
        ok = True
    except BaseException as e:
        log(f"FAILED: {e!r}")
        for path in sorted(tmp.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-40:]
            log(f"--- tail of {path.name} ---\n" + "\n".join(tail))
    finally:
        if args.keep_tmp or not ok:
            log(f"temp dir kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
