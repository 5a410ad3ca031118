"""The ASGI endpoint in process: discovery negotiation, 404/415, one request/response attempt."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import httpx
import pytest

import perdure
from perdure import Context
from perdure.protocol import messages as m
from perdure.protocol.framing import decode_messages, encode_messages
from perdure.protocol.ids import InvocationId

svc = perdure.Service("EndpointGreeter")


@svc.handler()
async def hi(ctx: Context, name: str) -> str:
    return f"hi {name}"


APP = perdure.app([svc])
V6 = "application/vnd.restate.invocation.v6"


def request(method: str, path: str, **kwargs: object) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://sdk") as client:
            return await client.request(method, path, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(go())


def test_discovery_negotiates_the_manifest_version() -> None:
    accept = ", ".join(f"application/vnd.restate.endpointmanifest.v{v}+json" for v in (1, 2, 3, 4))
    resp = request("GET", "/discover", headers={"accept": accept})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.restate.endpointmanifest.v4+json"
    body = resp.json()
    assert body["protocolMode"] == "REQUEST_RESPONSE"  # asked over HTTP/1.1
    assert (body["minProtocolVersion"], body["maxProtocolVersion"]) == (6, 6)
    assert body["services"][0]["name"] == "EndpointGreeter"
    no_accept = request("GET", "/prefix/discover")
    assert no_accept.headers["content-type"] == "application/vnd.restate.endpointmanifest.v2+json"
    only_v1 = request(
        "GET", "/discover", headers={"accept": "application/vnd.restate.endpointmanifest.v1+json"}
    )
    assert only_v1.status_code == 415


def test_unknown_handlers_and_versions() -> None:
    assert (
        request("POST", "/invoke/EndpointGreeter/nope", headers={"content-type": V6}).status_code
        == 404
    )
    assert request("POST", "/invoke/Nope/hi", headers={"content-type": V6}).status_code == 404
    wrong = request(
        "POST",
        "/invoke/EndpointGreeter/hi",
        headers={"content-type": "application/vnd.restate.invocation.v5"},
    )
    assert wrong.status_code == 415
    assert request("GET", "/health").status_code == 200


def test_request_response_attempt() -> None:
    inv = InvocationId.new()
    body = encode_messages(
        [
            m.StartMessage(id=inv.to_bytes(), debug_id=str(inv), known_entries=1),
            m.InputCommand(value=m.Value(content=b'"Ann"')),
        ]
    )
    resp = request("POST", "/invoke/EndpointGreeter/hi", headers={"content-type": V6}, content=body)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == V6
    assert decode_messages(resp.content) == [
        m.OutputCommand(value=m.Value(content=b'"hi Ann"')),
        m.EndMessage(),
    ]


def test_garbage_stream_ends_with_a_protocol_error() -> None:
    resp = request(
        "POST",
        "/invoke/EndpointGreeter/hi",
        headers={"content-type": V6},
        content=encode_messages([m.InputCommand()]),
    )
    (error,) = decode_messages(resp.content)
    assert isinstance(error, m.ErrorMessage) and error.code == 571


logged = perdure.Service("EndpointLogger")


@logged.handler()
async def chatty(ctx: Context) -> str:
    ctx.logger.info("before the sleep")
    await ctx.sleep(timedelta(milliseconds=1))
    ctx.logger.info("after the sleep")
    return "done"


def test_the_handler_logger_is_quiet_while_replaying(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="perdure.handler")
    app = perdure.app([logged])
    inv = InvocationId.new()

    def attempt(journal: list[m.Message]) -> list[m.Message]:
        start = m.StartMessage(id=inv.to_bytes(), debug_id=str(inv), known_entries=len(journal))

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://sdk") as client:
                return await client.post(
                    "/invoke/EndpointLogger/chatty",
                    headers={"content-type": V6},
                    content=encode_messages([start, *journal]),
                )

        return decode_messages(asyncio.run(go()).content)

    first = attempt([m.InputCommand()])
    sleep = first[0]
    assert isinstance(sleep, m.SleepCommand)
    assert isinstance(first[-1], m.SuspensionMessage)
    assert [r.getMessage() for r in caplog.records] == ["before the sleep"]

    caplog.clear()
    woke = m.SleepCompletion(completion_id=sleep.result_completion_id)
    woke.void.SetInParent()
    second = attempt([m.InputCommand(), sleep, woke])
    assert second[-1] == m.EndMessage()
    # "before the sleep" ran again during replay, but only the new line reached the log.
    assert [r.getMessage() for r in caplog.records] == ["after the sleep"]
