"""A real ``perdure server`` with tests/ui/services.py deployed, and Debian's Chromium driven by
Playwright (scripts/setup installs both), shared by the web UI tests of one session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer, wait_until

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@dataclass
class Deployed:
    server: PerdureServer

    @property
    def admin(self) -> str:
        return self.server.admin

    @property
    def ingress(self) -> str:
        return self.server.ingress

    def ui(self, route: str = "") -> str:
        return f"{self.admin}/ui/{route}"

    def query(self, sql: str) -> list[dict[str, Any]]:
        resp = httpx.post(self.admin + "/query", json={"query": sql}, timeout=30.0)
        resp.raise_for_status()
        rows: list[dict[str, Any]] = resp.json()["rows"]
        return rows

    def invocation(self, invocation_id: str) -> dict[str, Any]:
        rows = self.query(f"SELECT * FROM sys_invocation WHERE id = '{invocation_id}'")
        assert rows, f"no invocation {invocation_id}"
        return rows[0]

    def call(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{self.ingress}/{path}", json=body, timeout=30.0)

    def send(self, path: str, body: Any = None) -> str:
        resp = httpx.post(f"{self.ingress}/{path}/send", json=body, timeout=30.0)
        resp.raise_for_status()
        invocation_id: str = resp.json()["invocationId"]
        return invocation_id

    def wait_status(self, invocation_id: str, *statuses: str) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            row = self.invocation(invocation_id)
            return row if row["status"] in statuses else None

        found: dict[str, Any] = wait_until(reached, f"{invocation_id} to be {statuses}")
        return found


@pytest.fixture(scope="session")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("ui")
    # Attempts suspend after 1 s of waiting (not 1 min), so that sleeping invocations show as
    # suspended soon.
    args = ["--inactivity-timeout", "1s"]
    with (
        PerdureServer.start(tmp, args=args) as server,
        serve_asgi("tests.ui.services:app", tmp) as url,
    ):
        server.register(url)
        yield Deployed(server)


def require_chromium() -> Path:
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium (scripts/setup)")
        pytest.skip("chromium is not installed (run scripts/setup as root)")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module (Playwright's sync API holds an event loop in this thread
    while it runs, which async tests elsewhere must not meet)."""
    require_chromium()
    from playwright.sync_api import expect, sync_playwright

    # Generous: CI runs the whole suite on 2 shared cores.
    expect.set_options(timeout=15_000)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
