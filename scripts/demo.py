"""The quick start's main job: perdure's server on the embedded store (SQLite in --data-dir) with
every example service registered, a short tour of calls, then both keep running until Ctrl-C.

    python scripts/demo.py            # serve until Ctrl-C
    python scripts/demo.py --once     # the tour, then stop (what the tests run)
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        # Like the servers themselves: a port held only by TIME_WAIT connections is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _split(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host, int(port)


def _wait(url: str, what: str, child: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if child.poll() is not None:
            sys.exit(f"demo: {what} exited early; its log ({log}) ends with:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit(f"demo: {what} did not answer at {url} within 60 s; see {log}")


def _tail(log: Path) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:])
    except OSError:
        return ""


def _show(
    ingress: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None
) -> Any:
    data = "" if body is None else f" --json '{json.dumps(body)}'"
    extra = "".join(f" -H '{k}: {v}'" for k, v in (headers or {}).items())
    print(f"$ curl {ingress}/{path}{data}{extra}")
    resp = httpx.post(f"{ingress}/{path}", json=body, headers=headers, timeout=60)
    print(f"  {resp.status_code} {resp.text}")
    if resp.status_code >= 300:
        raise SystemExit(f"demo: {path} answered {resp.status_code}")
    return resp.json() if resp.content else None


def tour(ingress: str) -> None:
    run = time.strftime("%Y%m%d-%H%M%S")
    print("\nA tour (each call goes through perdure's ingress and is journaled in SQLite):")
    _show(ingress, "Cart/ann/add", {"sku": "tea", "price": 4})
    _show(ingress, "Cart/ann/add", {"sku": "cake", "price": 6})
    _show(ingress, "Cart/ann/checkout")
    _show(ingress, f"OrderProcess/order-{run}/run", {"item": "book", "card": "ok"})
    _show(
        ingress,
        "Checkout/buy",
        {"order": f"o-{run}", "amount": 30},
        headers={"idempotency-key": f"buy-{run}"},
    )
    _show(ingress, "Broadcast/send", {"sensors": ["a", "b", "c"], "reading": 7})
    _show(ingress, "Reminders/schedule", {"user": "ann", "text": f"tea at {run}", "seconds": 1})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = httpx.post(f"{ingress}/Inbox/ann/messages", timeout=30).json()
        if any(run in m for m in messages):
            break
        time.sleep(0.2)
    _show(ingress, "Inbox/ann/messages")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", default=str(REPO / ".perdure"))
    parser.add_argument("--ingress-bind", default="127.0.0.1:8080")
    parser.add_argument("--admin-bind", default="127.0.0.1:9070")
    parser.add_argument("--service-port", type=int, default=9080)
    parser.add_argument("--once", action="store_true", help="run the tour, then stop")
    args = parser.parse_args(argv)

    binds = {
        "ingress": args.ingress_bind,
        "admin": args.admin_bind,
        "services": f"127.0.0.1:{args.service_port}",
    }
    for name, bind in binds.items():
        if not _port_free(*_split(bind)):
            sys.exit(
                f"demo: {bind} ({name}) is in use; stop what listens there or pass "
                f"--{'service-port' if name == 'services' else name + '-bind'}"
            )
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    ingress, admin = f"http://{args.ingress_bind}", f"http://{args.admin_bind}"
    server_log, services_log = data / "demo-server.log", data / "demo-services.log"
    with open(server_log, "ab") as slog, open(services_log, "ab") as dlog:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "perdure.cli",
                "server",
                "--data-dir",
                str(data),
                "--ingress-bind",
                args.ingress_bind,
                "--admin-bind",
                args.admin_bind,
            ],
            stdout=slog,
            stderr=subprocess.STDOUT,
        )
        services = subprocess.Popen(
            [sys.executable, str(REPO / "examples" / "all_services.py")],
            stdout=dlog,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PORT": str(args.service_port)},
        )
    children = [services, server]
    try:
        _wait(f"{admin}/health", "perdure server", server, server_log)
        _wait(f"{ingress}/restate/health", "perdure ingress", server, server_log)
        _wait(f"http://{binds['services']}/health", "example services", services, services_log)
        resp = httpx.post(
            f"{admin}/deployments",
            json={"uri": f"http://{binds['services']}", "force": True},
            timeout=60,
        )
        if resp.status_code not in (200, 201):
            sys.exit(
                f"demo: registering the example services failed: {resp.status_code} {resp.text}"
            )
        names = sorted(s["name"] for s in resp.json()["services"])
        print(f"perdure server: ingress {ingress}, admin {admin}, data in {data}")
        print(f"example services at http://{binds['services']}: {', '.join(names)}")
        tour(ingress)
        if args.once:
            return 0
        print(
            f"\nRunning. Try the curl lines above, or the ones in examples/*.py. "
            f"Logs: {server_log}, {services_log}. Ctrl-C stops."
        )
        stop = False

        def _stop(*_: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop and all(c.poll() is None for c in children):
            time.sleep(0.2)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


if __name__ == "__main__":
    sys.exit(main())
