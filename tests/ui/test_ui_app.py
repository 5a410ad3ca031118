"""The UI's ASGI layer without a browser: its files, the redirect, the admin API behind it, and
the route that hands the call form's requests to the ingress."""

from __future__ import annotations

import ast
import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from perdure.server.ui import _ingress_scope, load_assets, with_ui


async def _echo(name: str, scope: dict[str, Any], send: Any) -> None:
    body = repr((name, scope["path"], scope.get("raw_path"), scope["headers"])).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def admin(scope: Any, receive: Any, send: Any) -> None:
    await _echo("admin", scope, send)


async def ingress(scope: Any, receive: Any, send: Any) -> None:
    await _echo("ingress", scope, send)


def test_the_assets_are_in_the_package() -> None:
    assets = load_assets()
    assert assets["/ui/"] == assets["/ui/index.html"]
    assert {"/ui/app.css", "/ui/js/main.js", "/ui/js/pages/invocation.js"} <= set(assets)
    assert assets["/ui/js/main.js"][1].startswith("text/javascript")


def test_routes() -> None:
    # In a thread of its own: the browser tests' Playwright keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _routes()).result()


async def _routes() -> None:
    app = with_ui(admin, ingress)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui") as http:
        root = await http.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/ui/"
        page = await http.get("/ui/")
        assert page.status_code == 200 and "<title>perdure</title>" in page.text
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert (await http.get("/ui/missing.js")).status_code == 404
        assert "'admin'" in (await http.get("/deployments")).text
        call = await http.post(
            "/ui/ingress/Cart/ann/add/send?delay=1s",
            content=b"1",
            headers={"content-type": "application/json", "idempotency-key": "k1",
                     "cookie": "c=1", "authorization": "Bearer t"},
        )  # fmt: skip
        name, path, raw_path, headers = ast.literal_eval(call.text)
        assert (name, path, raw_path) == ("ingress", "/Cart/ann/add/send", b"/Cart/ann/add/send")
        forwarded = {k.decode() for k, _ in headers}
        assert forwarded == {"accept", "content-type", "content-length", "idempotency-key"}
    assert with_ui(admin, ingress, enabled=False) is admin


def test_an_empty_call_goes_without_a_content_type() -> None:
    scope = {
        "type": "http", "method": "POST", "path": "/ui/ingress/Counter/k/get",
        "raw_path": b"/ui/ingress/Counter/k/get", "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"0")],
    }  # fmt: skip
    inner = _ingress_scope(scope)
    assert inner["path"] == "/Counter/k/get"
    assert inner["headers"] == [(b"content-length", b"0")]
