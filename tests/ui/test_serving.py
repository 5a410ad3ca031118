"""``perdure dev`` serves the web UI too, and ``--no-ui`` turns it off (on dev and server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.dev.support import REPO, DevProcess


def test_perdure_dev_serves_the_ui(tmp_path: Path, page: Any) -> None:
    with DevProcess.start("tests/ui/services.py", tmp_path, cwd=REPO) as dev:
        assert f"  ui       {dev.admin}/ui\n" in dev.output()
        root = httpx.get(dev.admin + "/")
        assert root.status_code == 307 and root.headers["location"] == "/ui/"
        answer = httpx.post(f"{dev.ingress}/Counter/dev/add", json=3, timeout=30.0)
        invocation_id = answer.headers["x-restate-id"]
        page.goto(dev.admin + "/ui/")
        expect(page.locator(f'tr[data-id="{invocation_id}"]')).to_contain_text("Counter/dev/add")
        page.goto(f"{dev.admin}/ui/#/services/Counter")
        expect(page.locator(".deployments")).to_contain_text("local://")


def test_no_ui_turns_it_off(tmp_path: Path) -> None:
    with DevProcess.start("tests/ui/services.py", tmp_path, cwd=REPO, args=["--no-ui"]) as dev:
        assert httpx.get(dev.admin + "/ui/").status_code == 404
        assert httpx.get(dev.admin + "/health").status_code == 200
        assert "  ui  " not in dev.output()


def test_perdure_server_no_ui(tmp_path: Path) -> None:
    from tests.support.perdure_server import PerdureServer

    with PerdureServer.start(tmp_path, args=["--no-ui"]) as server:
        assert httpx.get(server.admin + "/ui/").status_code == 404
        assert httpx.get(server.admin + "/").status_code == 404
