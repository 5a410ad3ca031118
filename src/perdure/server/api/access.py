"""Who may use an HTTP API: the checks in front of the ingress and the admin API when they listen
on a socket (``perdure server`` and ``perdure dev``; in-process callers skip them).

In order, each answering before the API sees the request:

1. **Host** (403). A web page can make a browser send requests to a developer's localhost server
   under a name the attacker controls (DNS rebinding), then read the answers. Such a request
   carries the attacker's name in ``Host``, so only these are answered: ``localhost`` and
   ``*.localhost``, IP addresses (a rebinding needs a name), the bound host, this machine's name,
   and the names of ``--allowed-host`` (``*`` turns the check off).
2. **Origin** (403). A browser says which page sent a request. A page of another origin is
   refused, so it cannot make a browser register deployments, kill invocations or call
   handlers. Programs (the CLI, SDK clients, curl) send no ``Origin``. No CORS headers are
   ever sent: a browser never lets another origin read an answer.
3. **Bearer token** (401), when the API has one: ``Authorization: Bearer <token>``, compared in
   constant time. ``/health`` (and ``/restate/health``) and the web UI's static files stay open;
   the UI sends the token with its API calls. The header is removed before the API sees the
   request, so the token never reaches a handler or the journal.
4. **JSON writes** (415, admin only). A state-changing request must say
   ``Content-Type: application/json``: an HTML form or a ``text/plain`` fetch cannot, and one
   that could would need a CORS preflight that is never granted.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from perdure.server.api.http import Receive, Scope, Send
from perdure.server.bind import split_bind

OPEN_PATHS = frozenset({"/health", "/restate/health"})
"""Answered without a token: load balancers and readiness probes poll them."""
UI_PREFIX = "/ui"
"""The web UI's static files on the admin port load without a token (its API calls need one)."""
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class Access:
    """The checks of one listener (see the module docstring)."""

    bind: str
    """``HOST:PORT`` the API listens on; its host is allowed in ``Host``."""
    token: str | None = None
    """The bearer token every request but the open ones must carry (None: no token)."""
    allowed_hosts: tuple[str, ...] = ()
    """More names clients may use in ``Host`` (``*``: any)."""
    json_writes: bool = False
    """Require a JSON content type on state-changing requests (the admin API)."""
    token_hint: str = ""
    """How a client sends the token, for the 401 message."""
    _names: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        bound = (split_bind(self.bind) or ("", 0))[0].lower()
        names = {"localhost", bound, *(h.lower().strip("[]") for h in self.allowed_hosts)}
        if hostname := socket.gethostname():  # not getfqdn: a DNS lookup could stall the start
            names.add(hostname.lower())
        object.__setattr__(self, "_names", frozenset(names))

    def host_allowed(self, host: str) -> bool:
        """Whether a ``Host`` value (with or without a port) names this server."""
        if "*" in self.allowed_hosts:
            return True
        name = _hostname(host)
        if name is None:
            return False
        if name in self._names or name.endswith(".localhost"):
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def origin_allowed(self, origin: str, host: str | None) -> bool:
        """A page may call the API only from its own origin, or from a loopback or allowed
        name (a developer's own tools); ``null`` origins (sandboxes, files) are refused."""
        if "*" in self.allowed_hosts:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        if host and parts.netloc.lower() == host.lower():
            return True
        name = (parts.hostname or "").lower()
        if name in self._names or name.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(name).is_loopback
        except ValueError:
            return False

    def token_ok(self, authorization: str | None) -> bool:
        if self.token is None:
            return True
        scheme, _, given = (authorization or "").partition(" ")
        expected = self.token.encode()
        # compare_digest takes as long for any wrong token of a given length as for a right one
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def _hostname(host: str) -> str | None:
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else None
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit():
        host = name
    return host or None


class Guarded:
    """An ASGI app behind the checks of ``access``."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], access: Access):
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                status, message, extra = refusal
                await _refuse(send, status, message, extra)
                return
            if self.access.token is not None:
                # The token is perdure's, not the handler's: it must not reach the journal.
                scope = dict(scope)
                scope["headers"] = [(k, v) for k, v in scope["headers"]
                                    if k.lower() != b"authorization"]  # fmt: skip
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        access = self.access
        headers = _headers(scope.get("headers", ()))
        host = headers.get("host")
        if host and not access.host_allowed(host):
            return (
                403,
                f"Host {host[:100]!r} is not allowed: this server answers requests addressed to "
                "localhost, an IP address or its bound name (a defence against DNS rebinding). "
                "Start the server with --allowed-host NAME to allow another name.",
                [],
            )
        origin = headers.get("origin")
        if origin is not None and not access.origin_allowed(origin, host):
            return (
                403,
                f"requests from web pages of another origin ({origin[:100]!r}) are refused",
                [],
            )
        method, path = scope["method"], scope["path"]
        public = path in OPEN_PATHS or (
            method in ("GET", "HEAD") and (path == UI_PREFIX or path.startswith(UI_PREFIX + "/"))
        )
        if not public and not access.token_ok(headers.get("authorization")):
            return (
                401,
                "this API needs a bearer token: send 'Authorization: Bearer <token>'"
                + (f" ({access.token_hint})" if access.token_hint else ""),
                [(b"www-authenticate", b"Bearer")],
            )
        if access.json_writes and method in _WRITES:
            content_type = headers.get("content-type")
            must = method == "POST" or content_type is not None
            if must and not _is_json(content_type):
                return (
                    415,
                    f"{method} {path} needs 'Content-Type: application/json' "
                    f"(got {(content_type or 'none')[:100]!r})",
                    [],
                )
        return None


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in raw:
        headers.setdefault(key.decode("latin-1").lower(), value.decode("latin-1"))
    return headers


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


async def _refuse(send: Send, status: int, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps({"message": message, "restate_code": None}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
