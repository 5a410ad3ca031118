"""The quick start's main job: ``perdure dev examples/all_services.py`` (the server on the
embedded store, SQLite in --data-dir, and every example service in one process), a short tour of
calls, then serving until Ctrl-C, reloading the examples when you edit them.

    python scripts/demo.py            # serve until Ctrl-C
    python scripts/demo.py --once     # the tour, then stop (what the tests run)
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
READY = "Ctrl-C stops."


def _wait_ready(child: subprocess.Popen[bytes], log: Path) -> str:
    """perdure dev's banner, once it is serving (it checks the addresses and the app first)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = _read(log)
        if READY in text:
            return text
        if child.poll() is not None:
            sys.exit(f"demo: perdure dev exited early:\n{_tail(log)}")
        time.sleep(0.1)
    sys.exit(f"demo: perdure dev was not ready within 60 s; see {log}")


def _read(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _tail(log: Path) -> str:
    return "\n".join(_read(log).splitlines()[-20:])


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
    parser.add_argument("--once", action="store_true", help="run the tour, then stop")
    args = parser.parse_args(argv)

    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    ingress, admin = f"http://{args.ingress_bind}", f"http://{args.admin_bind}"
    log = data / "demo-dev.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(
            [
                sys.executable, "-m", "perdure.cli", "dev", "examples/all_services.py",
                "--data-dir", str(data),
                "--ingress-bind", args.ingress_bind,
                "--admin-bind", args.admin_bind,
                "--log-level", "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )  # fmt: skip
    try:
        banner = _wait_ready(child, log)
        print(banner, end="")
        services = httpx.get(f"{admin}/services", timeout=30).json()["services"]
        print(f"registered: {', '.join(sorted(s['name'] for s in services))}")
        tour(ingress)
        if args.once:
            child.send_signal(signal.SIGTERM)
            code = child.wait(timeout=60)
            if code != 0:
                sys.exit(f"demo: perdure dev exited with {code}:\n{_tail(log)}")
            return 0
        print(
            "\nRunning. Try the curl lines above; edit examples/*.py and perdure dev reloads "
            "them. Ctrl-C stops."
        )
        return _follow(child, log, offset=len(_read(log)))
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()


def _follow(child: subprocess.Popen[bytes], log: Path, offset: int) -> int:
    """Print what perdure dev says (reloads, errors) until Ctrl-C or until it exits."""
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stop and child.poll() is None:
        text = _read(log)
        if len(text) > offset:
            print(text[offset:], end="", flush=True)
            offset = len(text)
        time.sleep(0.2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
