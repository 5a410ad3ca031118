"""The web UI, served on the admin port: ``/ui/`` and its static files, ``/`` redirects there.

The UI is hand-written HTML, CSS and JavaScript modules under ``static/`` (no build step, nothing
fetched from the internet). It reads and acts only through the admin API (``/query``, the
invocation verbs, state edits, deployments), so ``with_ui`` just puts the files in front of the
admin app: every other request goes to the admin API unchanged.

One route more: the UI's form calls a handler with ``POST /ui/ingress/<ingress path>``, which the
admin port hands to the ingress in-process. The browser never calls the ingress port itself, so the
ingress needs no CORS (it grants none), and the call is made with the admin's rights: it passes
the admin API's access checks (token, origin, JSON content type) like every other UI request.
"""

from __future__ import annotations

from pathlib import Path

from perdure.server.api.http import Receive, Scope, Send
from perdure.server.invoker.local import ASGIApp

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui/"
INGRESS = "/ui/ingress/"
_FORWARDED = frozenset({b"content-type", b"content-length", b"accept", b"idempotency-key"})

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page talks to the admin API (its own origin) and loads nothing else.
_SECURITY = [
    ("content-security-policy",
     "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]  # fmt: skip


def load_assets(root: Path = STATIC) -> dict[str, tuple[bytes, str]]:
    """Every file under ``root`` by its URL path (``/ui/app.js``), with its content type."""
    assets: dict[str, tuple[bytes, str]] = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix in _TYPES:
            url = PREFIX + path.relative_to(root).as_posix()
            assets[url] = (path.read_bytes(), _TYPES[path.suffix])
    assets[PREFIX] = assets[PREFIX + "index.html"]
    return assets


class WithUI:
    """An ASGI app: the UI's files and its ingress route, else the admin API."""

    def __init__(self, admin: ASGIApp, ingress: ASGIApp) -> None:
        self.admin = admin
        self.ingress = ingress
        self.assets = load_assets()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(INGRESS):
            await self.ingress(_ingress_scope(scope), receive, send)
            return
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD"):
            path = scope["path"]
            if path in ("/", "/ui"):
                await _answer(send, 307, b"", [("location", PREFIX)])
                return
            if path.startswith(PREFIX):
                asset = self.assets.get(path)
                if asset is None:
                    await _answer(send, 404, b"not found", [("content-type", "text/plain")])
                    return
                body, content_type = asset
                headers = [("content-type", content_type), ("cache-control", "no-cache"),
                           *_SECURITY]  # fmt: skip
                await _answer(send, 200, b"" if scope["method"] == "HEAD" else body, headers)
                return
        await self.admin(scope, receive, send)


async def _answer(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _ingress_scope(scope: Scope) -> Scope:
    """The request as the ingress sees it: its own path, and only the headers a call needs (an
    empty body goes without a content type, as a handler without input wants it)."""
    path = "/" + scope["path"][len(INGRESS) :]
    raw = scope.get("raw_path") or scope["path"].encode()
    headers = [(k, v) for k, v in scope["headers"] if k.lower() in _FORWARDED]
    if not any(k.lower() == b"content-length" and v.strip() not in (b"", b"0") for k, v in headers):
        headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
    return {
        **scope,
        "path": path,
        "raw_path": b"/" + raw.split(b"?", 1)[0][len(INGRESS) :],
        "headers": headers,
    }


def with_ui(admin: ASGIApp, ingress: ASGIApp, enabled: bool = True) -> ASGIApp:
    """The admin app with the UI in front of it (or unchanged when the UI is turned off)."""
    return WithUI(admin, ingress) if enabled else admin
