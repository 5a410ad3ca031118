"""A hand-written deployment that breaks the service protocol on purpose, answering over
HTTP/1.1 (request/response) with raw frames built by ``perdure.protocol``. Each handler is one
violation; ``ok`` is a well-formed answer. Every attempt appends its handler's name to
``attempts.log`` in PERDURE_EFFECTS, so a test can count the retries.

    hypercorn tests.server.fake_deployment:app
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from perdure.protocol import messages as m
from perdure.protocol.framing import encode_messages
from perdure.protocol.versions import invocation_content_type, manifest_content_type

FOREVER = 2**64 - 1
"""The largest wake-up or invoke time the wire (uint64 milliseconds) can carry."""
OUTPUT = m.OutputCommand(value=m.Value(content=b'"out"'))

ANSWERS: dict[str, list[m.Message]] = {
    "ok": [OUTPUT, m.EndMessage()],
    "end_without_output": [m.EndMessage()],
    "two_outputs": [OUTPUT, OUTPUT, m.EndMessage()],
    "unknown_run": [
        m.ProposeRunCompletionMessage(result_completion_id=7, value=b'"made up"'),
        OUTPUT,
        m.EndMessage(),
    ],
    "sleep_forever": [
        m.SleepCommand(wake_up_time=FOREVER, result_completion_id=1),
        m.SuspensionMessage(waiting_completions=[1]),
    ],
    "send_at_the_end_of_time": [
        m.OneWayCallCommand(
            service_name="Fake", handler_name="ok", parameter=b"", invoke_time=FOREVER,
            invocation_id_notification_idx=1,
        ),
        OUTPUT,
        m.EndMessage(),
    ],
}  # fmt: skip

MANIFEST = {
    "protocolMode": "REQUEST_RESPONSE",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 6,
    "services": [
        {
            "name": "Fake",
            "ty": "SERVICE",
            "retryPolicyMaxAttempts": 2,
            "retryPolicyOnMaxAttempts": "KILL",
            "retryPolicyInitialInterval": 50,
            "handlers": [{"name": name} for name in ANSWERS],
        }
    ],
}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"].rstrip("/")
    if path.endswith("/discover"):
        body = json.dumps(MANIFEST).encode()
        await _answer(send, 200, manifest_content_type(4), body)
        return
    handler = path.rsplit("/", 1)[-1]
    while (await receive()).get("more_body"):  # Start and the journal: not needed here
        pass
    with open(Path(os.environ.get("PERDURE_EFFECTS", "/tmp")) / "attempts.log", "a") as f:
        f.write(handler + "\n")
    await _answer(send, 200, invocation_content_type(6), encode_messages(ANSWERS[handler]))


async def _answer(send: Any, status: int, content_type: str, body: bytes) -> None:
    headers = [(b"content-type", content_type.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
