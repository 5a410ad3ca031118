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


def test_register_and_remove_a_deployment_from_the_ui(tmp_path: Path, page: Any) -> None:
    from tests.support.official import serve_asgi
    from tests.support.perdure_server import PerdureServer

    with (
        PerdureServer.start(tmp_path) as server,
        serve_asgi("tests.ui.services:app", tmp_path) as url,
    ):
        page.goto(f"{server.admin}/ui/#/services")
        expect(page.locator(".svc-detail")).to_be_empty()
        page.fill(".register input[name=uri]", url)
        page.click(".register button")
        expect(page.locator(".svc-list")).to_contain_text("Greeter")
        expect(page.locator(".svc-list")).to_contain_text("Counter")
        names = {s["name"] for s in httpx.get(server.admin + "/services").json()["services"]}
        assert names == {"Greeter", "Counter", "Signup"}
        page.on("dialog", lambda dialog: dialog.accept())
        page.locator(".deployments button", has_text="remove").click()
        expect(page.locator(".svc-list")).to_contain_text("No services yet")
        assert httpx.get(server.admin + "/deployments").json()["deployments"] == []
