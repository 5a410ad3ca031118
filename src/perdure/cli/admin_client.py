"""The CLI's client of an admin API (perdure's or Restate 1.7's): one code path for both.

Like Restate's CLI it first asks ``GET /version`` (unprefixed), then sends every request under
``/v{min(4, max_admin_api_version)}``. Reads of invocations, journals and state go through
``POST /query`` with ``Accept: application/json``. Every failure becomes a ``CliError`` whose
message says what to do next.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

DEFAULT_ADMIN = "http://localhost:9070"


class CliError(Exception):
    """A failed operation (exit code 1) with a message for the user."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def admin_url(given: str | None) -> str:
    return (given or os.environ.get("PERDURE_ADMIN_URL") or DEFAULT_ADMIN).rstrip("/")


def admin_token(given: str | None) -> str | None:
    """``--token``, else ``$PERDURE_ADMIN_TOKEN`` (None: send no token)."""
    return given or os.environ.get("PERDURE_ADMIN_TOKEN") or None


class AdminClient:
    def __init__(self, base: str, *, timeout: float = 30.0, token: str | None = None) -> None:
        self.base = base.rstrip("/")
        auth = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(timeout=timeout, headers=auth)
        self._prefix: str | None = None
        self._version: dict[str, Any] | None = None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, self.base + path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                f"cannot reach the admin API at {self.base} ({exc.__class__.__name__}: {exc}). "
                "Is the server running? Start one with `perdure server`, or pass --admin URL "
                "(or set PERDURE_ADMIN_URL)."
            ) from None

    def version(self) -> dict[str, Any]:
        if self._version is None:
            resp = self._send("GET", "/version")
            if resp.status_code == 401:
                raise CliError(_server_message(resp), status=401)
            if resp.status_code != 200:
                raise CliError(f"{self.base}/version answered {resp.status_code}: is this an "
                               "admin API (port 9070 by default)?")  # fmt: skip
            self._version = resp.json()
            top = min(4, int(self._version.get("max_admin_api_version", 4)))
            self._prefix = f"/v{top}"
        return self._version

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send under the negotiated prefix; raise CliError on any non-2xx answer."""
        self.version()
        resp = self._send(method, f"{self._prefix}{path}", **kwargs)
        if resp.status_code >= 400:
            raise CliError(_server_message(resp), status=resp.status_code)
        return resp

    # -- helpers -------------------------------------------------------------------------------

    def get(self, path: str) -> Any:
        return self.request("GET", path).json()

    def query(self, sql: str) -> list[dict[str, Any]]:
        resp = self.request(
            "POST", "/query", json={"query": sql}, headers={"accept": "application/json"}
        )
        if resp.headers.get("content-type", "").split(";")[0] != "application/json":
            raise CliError(f"the admin API at {self.base} lacks JSON /query support")
        rows: list[dict[str, Any]] = resp.json().get("rows", [])
        return rows


def _server_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        message = body.get("message") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return str(message or resp.text or resp.reason_phrase or "no details")


def sql_string(value: str) -> str:
    """A SQL string literal (the same on DataFusion and SQLite)."""
    return "'" + value.replace("'", "''") + "'"
