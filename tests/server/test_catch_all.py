"""The last resort of both HTTP APIs: an unexpected exception is a logged 500 with a JSON body
in the API's error shape, never a traceback or an internal message sent to the client."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from perdure.server.api.admin import Admin
from perdure.server.api.ingress import Ingress


class _Exploding:
    """Stands in for the engine: every attribute access fails as a bug would."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("secret internal detail /var/lib/db")


async def _request(app: Any, method: str, path: str) -> tuple[int, dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "method": method, "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": []}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, body = sent
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/json"
    return start["status"], json.loads(body["body"])


@pytest.mark.asyncio
async def test_the_ingress_answers_a_bug_with_a_json_500(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        status, body = await _request(Ingress(_Exploding()), "POST", "/Greeter/greet")  # type: ignore[arg-type]
    assert status == 500
    assert body["code"] == 500 and body["source"] == "ingress"
    assert body["message"] == "internal error (RuntimeError); the server's log has the details"
    assert "secret" in caplog.text  # the details are in the log, not in the answer


@pytest.mark.asyncio
async def test_the_admin_api_answers_a_bug_with_a_json_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    admin = Admin(_Exploding(), _Exploding(), "http://127.0.0.1:8080")  # type: ignore[arg-type]
    with caplog.at_level(logging.ERROR):
        status, body = await _request(admin, "GET", "/services")
    assert status == 500
    assert body == {
        "message": "internal error (RuntimeError); the server's log has the details",
        "restate_code": None,
    }
    assert "secret" in caplog.text
