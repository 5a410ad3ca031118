"""Takes the screenshots of docs/ui.md: a real perdure server with tests/ui/services.py, some
invocations in every state, and each main page in Chromium.

    .venv/bin/python -m tests.ui.screenshots     # writes docs/ui/*.png
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer, wait_until
from tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, Deployed

OUT = Path(__file__).resolve().parents[2] / "docs" / "ui"


def populate(d: Deployed) -> dict[str, str]:
    ids: dict[str, str] = {}
    for name in ("Ann", "Bo", "Cy"):
        ids["greet"] = d.call("Greeter/greet", name).headers["x-restate-id"]
    ids["fan"] = d.call("Greeter/fan", ["Dee", "Eve", "Flo"]).headers["x-restate-id"]
    for key, n in (("ann", 3), ("bo", 5), ("cy", 1)):
        d.call(f"Counter/{key}/add", n)
    d.call("Counter/ann/add", 4)
    ids["nap"] = d.send("Greeter/nap", 600)
    d.send("Greeter/nap", 900)
    ids["flaky"] = d.send("Greeter/flaky", "printer")
    ids["deadlock"] = d.send("Counter/dl/recount")
    cancelled = d.send("Greeter/nap", 1200)
    d.wait_status(cancelled, "suspended", "running")
    httpx.patch(f"{d.admin}/invocations/{cancelled}/cancel")
    wait_until(lambda: d.invocation(ids["flaky"]).get("retry_count", 0) >= 2, "retries")
    d.wait_status(ids["nap"], "suspended")
    return ids


def shoot(page: Any, url: str, name: str, height: int | None = None) -> None:
    page.goto(url)
    page.wait_for_timeout(1200)
    if height:
        page.set_viewport_size({"width": 1280, "height": height})
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=height is None)
    print("wrote", OUT / f"{name}.png")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        args = ["--inactivity-timeout", "1s"]
        with (
            PerdureServer.start(tmp, args=args) as server,
            serve_asgi("tests.ui.services:app", tmp) as url,
        ):
            server.register(url)
            d = Deployed(server)
            ids = populate(d)
            time.sleep(1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 720})
                shoot(page, d.ui(), "invocations")
                shoot(page, d.ui(f"#/invocation/{ids['fan']}"), "invocation")
                shoot(page, d.ui(f"#/invocation/{ids['flaky']}"), "failing")
                shoot(page, d.ui(f"#/invocation/{ids['deadlock']}"), "deadlock")
                shoot(page, d.ui("#/services/Greeter"), "services", height=900)
                shoot(page, d.ui("#/state?service=Counter&key=ann"), "state")
                shoot(page, d.ui("#/sql"), "sql")
                browser.close()


if __name__ == "__main__":
    main()
