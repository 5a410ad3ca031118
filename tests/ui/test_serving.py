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


def test_with_tokens_the_ui_asks_for_the_admin_token_and_works(tmp_path: Path, page: Any) -> None:
    """Auth on for both APIs: the UI's files load, its first API call answers 401 and the UI
    asks for the admin token, then lists invocations and calls a handler (through the admin
    port: the ingress token is not needed)."""
    from tests.support.official import serve_asgi
    from tests.support.perdure_server import PerdureServer

    (tmp_path / "admin.token").write_text("admin-s3cret\n")
    (tmp_path / "ingress.token").write_text("ingress-s3cret\n")
    args = ["--admin-token-file", str(tmp_path / "admin.token"),
            "--ingress-token-file", str(tmp_path / "ingress.token")]  # fmt: skip
    with (
        PerdureServer.start(tmp_path, args=args) as server,
        serve_asgi("tests.ui.services:app", tmp_path) as url,
    ):
        admin = {"authorization": "Bearer admin-s3cret"}
        httpx.post(
            server.admin + "/deployments", json={"uri": url}, headers=admin
        ).raise_for_status()
        assert httpx.post(server.admin + "/query", json={"query": "SELECT 1"}).status_code == 401
        page.goto(f"{server.admin}/ui/#/services/Counter")
        expect(page.locator("#token-dialog")).to_be_visible()
        page.fill("#token-input", "admin-s3cret")
        page.click("#token-dialog button[value=ok]")
        card = page.locator('.handler[data-handler="add"]')
        card.locator("input[name=key]").fill("tok")
        card.locator("textarea").fill("2")
        card.locator("button", has_text="Call").click()
        expect(card.locator(".call-result")).to_contain_text("200")
        invocation_id = card.locator(".call-result a").inner_text()
        page.goto(f"{server.admin}/ui/#/invocations")
        expect(page.locator(f'tr[data-id="{invocation_id}"]')).to_contain_text("Counter/tok/add")
        assert page.evaluate("sessionStorage.getItem('perdure.adminToken')") == "admin-s3cret"
        # The ingress itself still wants its own token.
        assert httpx.post(f"{server.ingress}/Counter/tok/get", json=None).status_code == 401


def test_the_ui_ingress_route_needs_the_admin_token(tmp_path: Path) -> None:
    from tests.support.perdure_server import PerdureServer

    (tmp_path / "admin.token").write_text("admin-s3cret\n")
    args = ["--admin-token-file", str(tmp_path / "admin.token")]
    with PerdureServer.start(tmp_path, args=args) as server:
        route = server.admin + "/ui/ingress/Counter/k/add"
        assert httpx.post(route, json=1).status_code == 401
        assert httpx.get(server.admin + "/ui/").status_code == 200  # the files stay open
        # Past the checks it is the ingress that answers (no such service here).
        answer = httpx.post(route, json=1, headers={"authorization": "Bearer admin-s3cret"})
        assert answer.status_code == 404 and answer.json()["source"] == "ingress"
